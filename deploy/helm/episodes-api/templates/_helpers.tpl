{{/* The chart's name, and the release's full name that prefixes every object. */}}
{{- define "episodes-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "episodes-api.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object; selectorLabels with a component (app or worker) select its pods. */}}
{{- define "episodes-api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "episodes-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "episodes-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "episodes-api.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A pod's labels: its selector's, and the version (each key once: the API server refuses repeats). */}}
{{- define "episodes-api.podLabels" -}}
{{ include "episodes-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}

{{- define "episodes-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "episodes-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "episodes-api.secretName" -}}
{{- default (include "episodes-api.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The image, with a pinned tag: appVersion unless image.tag is set, never `latest`. */}}
{{- define "episodes-api.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: pin a version, not latest" }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/*
The environment of both processes: compose's x-service-env. The passwords come from the Secret as
variables of their own, and the URLs are composed from them with Kubernetes' $(NAME) expansion, which
resolves names defined earlier in the list: the same URLs as compose's, built the same way.
*/}}
{{- define "episodes-api.sharedEnv" -}}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "episodes-api.secretName" . }}
      key: POSTGRES_PASSWORD
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "episodes-api.secretName" . }}
      key: REDIS_PASSWORD
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(POSTGRES_PASSWORD)@%s:%v/%s" .Values.database.user .Values.database.host .Values.database.port .Values.database.name | quote }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" .Values.redis.host .Values.redis.port .Values.redis.database | quote }}
- name: CELERY_BROKER_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" .Values.redis.host .Values.redis.port .Values.redis.brokerDatabase | quote }}
- name: ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "episodes-api.secretName" . }}
      key: ADMIN_TOKEN
- name: ALERT_WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "episodes-api.secretName" . }}
      key: ALERT_WEBHOOK_URL
      # Unset without the key: the app then sends no webhook alerts.
      optional: true
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
# One JSON log file per pod, on the app-logs volume; Filebeat reads it from the node.
- name: LOG_FILE
  value: /var/log/app/app.jsonl
- name: PROMETHEUS_MULTIPROC_DIR
  value: /run/metrics
# Prometheus scrapes the pod's address; the NetworkPolicy admits only the monitoring pods.
- name: METRICS_BIND_ADDRESS
  value: 0.0.0.0
{{- end }}

{{/* The pod's security context: the image's uid and gid (app/Dockerfile), never root. */}}
{{- define "episodes-api.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "episodes-api.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The writable directories both processes need: logs, metrics, /tmp. */}}
{{- define "episodes-api.commonVolumes" -}}
- name: app-logs
  emptyDir:
    sizeLimit: {{ .Values.volumes.logsSizeLimit }}
- name: metrics
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.volumes.metricsSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.volumes.tmpSizeLimit }}
{{- end }}

{{- define "episodes-api.commonVolumeMounts" -}}
- name: app-logs
  mountPath: /var/log/app
- name: metrics
  mountPath: /run/metrics
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Where the log shipping objects go: the namespace of the ECK resources that mount them. */}}
{{- define "episodes-api.logShippingNamespace" -}}
{{- default .Release.Namespace .Values.logShipping.namespace }}
{{- end }}
