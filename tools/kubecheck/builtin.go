package main

import (
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// strictCodec decodes as the API server does with fieldValidation=Strict: a field the type does not
// have, or one given twice, is an error (not dropped), and a value of the wrong type cannot decode.
var strictCodec = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Strict: true})

// kubernetesRelease is the release whose API types this build knows (k8s.io/api v0.X.Y is 1.X.Y).
var kubernetesRelease = apiRelease()

func apiRelease() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	for _, dep := range info.Deps {
		if dep.Path == "k8s.io/api" {
			return "1." + strings.TrimPrefix(dep.Version, "v0.")
		}
	}
	return "(unknown)"
}

func isBuiltIn(gvk schema.GroupVersionKind) bool {
	return scheme.Scheme.Recognizes(gvk)
}

// checkBuiltIn decodes the object strictly into its API type, then validates it as the API server
// does; every problem is one line.
func checkBuiltIn(data []byte) []string {
	obj, gvk, err := strictCodec.Decode(data, nil, nil)
	if err == nil {
		return validateAsServer(obj, *gvk)
	}
	strict, ok := runtime.AsStrictDecodingError(err)
	if !ok {
		return []string{err.Error()}
	}
	var problems []string
	for _, problem := range strict.Errors() {
		problems = append(problems, problem.Error())
	}
	return problems
}
