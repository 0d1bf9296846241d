package main

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// header is what every object must say about itself before it can be checked at all.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// checkObject returns the object's label (Kind/name) and its problems: built-in kinds are checked
// against the API's types, the rest against a CRD's schema; a kind with neither is a problem.
func checkObject(data []byte, crds customKinds) (string, []string) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return "?/?", []string{fmt.Sprintf("not a Kubernetes object: %v", err)}
	}
	label := fmt.Sprintf("%s/%s", orUnknown(h.Kind), orUnknown(h.Metadata.Name))
	if h.APIVersion == "" || h.Kind == "" {
		return label, []string{"apiVersion and kind are required"}
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return label, []string{err.Error()}
	}
	gvk := gv.WithKind(h.Kind)
	if isBuiltIn(gvk) {
		return label, checkBuiltIn(data)
	}
	if kind, found := crds[gvk]; found {
		return label, kind.check(data)
	}
	return label, []string{fmt.Sprintf("no schema known for %s %s: neither a built-in kind of Kubernetes %s nor a kind of the embedded CRDs (kubecheck --kinds lists them)",
		h.APIVersion, h.Kind, kubernetesRelease)}
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
