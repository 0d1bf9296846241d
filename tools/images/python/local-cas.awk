# Writes each certificate of the CA bundle `bundle` that none of the other input files holds to a file
# of its own, named by the printf pattern `out` (update-ca-certificates takes one certificate a file).
#   awk -v bundle=BUNDLE -v out=PATTERN -f local-cas.awk SHIPPED.crt... BUNDLE
function read_cert(line) { # true once `cert` holds a whole certificate
    sub(/\r$/, "", line)
    if (line ~ /^-----BEGIN /) cert = ""
    cert = cert line "\n"
    return line ~ /^-----END /
}
FILENAME != bundle { if (read_cert($0)) shipped[cert] = 1; next }
read_cert($0) && !(cert in shipped) {
    file = sprintf(out, ++n)
    printf "%s", cert > file
    close(file)
}
