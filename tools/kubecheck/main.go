// kubecheck validates rendered Kubernetes manifests offline, as an API server would on create,
// for tests/static/test_kubernetes_validation.py: built-in kinds by strict decoding into the API's
// Go types (k8s.io/api), then the API server's own defaulting and create validation
// (k8s.io/kubernetes's registry strategies); custom resources against the operators' CRD schemas,
// which tools/build.sh puts into crds/ from the operators' own modules before it builds this program.
//
//	kubecheck FILE...   (multi-document YAML; - reads standard input)
//	kubecheck --version
//	kubecheck --kinds   (the custom resource kinds whose schemas it knows)
//
// It prints one line per object, "ok Kind/name" or "error Kind/name: ..." for each problem, and
// exits 1 when any object has one. A kind it has no schema for is an error: nothing passes unchecked.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time (tools/build.sh: -X main.version=...): it names the source and the
// operator versions whose CRDs are embedded, so that a change of either rebuilds.
var version = "dev"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	showKinds := flag.Bool("kinds", false, "list the custom resource kinds with a known schema and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("kubecheck, version %s \n", version)
		return
	}
	crds, err := loadEmbeddedCRDs()
	if err != nil {
		fail(err)
	}
	if *showKinds {
		printKinds(crds)
		return
	}
	if flag.NArg() == 0 {
		fail(fmt.Errorf("usage: kubecheck FILE... (- for standard input)"))
	}
	failed := false
	for _, name := range flag.Args() {
		bad, err := checkFile(name, crds)
		if err != nil {
			fail(err)
		}
		failed = failed || bad
	}
	if failed {
		os.Exit(1)
	}
}

// checkFile checks every object of one file and prints its lines; true when any had a problem.
func checkFile(name string, crds customKinds) (bool, error) {
	data, err := readInput(name)
	if err != nil {
		return false, err
	}
	docs, err := splitDocuments(name, data)
	if err != nil {
		return false, err
	}
	failed := false
	for _, doc := range docs {
		label, problems := checkObject(doc.json, crds)
		if doc.problem != nil {
			problems = append([]string{doc.problem.Error()}, problems...)
		}
		if len(problems) == 0 {
			fmt.Printf("ok %s\n", label)
			continue
		}
		failed = true
		for _, problem := range problems {
			fmt.Printf("error %s (%s): %s\n", label, doc.where, strings.ReplaceAll(problem, "\n", " "))
		}
	}
	return failed, nil
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

func printKinds(crds customKinds) {
	names := make([]string, 0, len(crds))
	for gvk, kind := range crds {
		names = append(names, fmt.Sprintf("%s %s", gvk.GroupVersion(), gvk.Kind)+" ("+kind.source+")")
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Println(name)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubecheck:", err)
	os.Exit(2)
}
