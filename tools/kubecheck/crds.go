package main

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdFiles: the operators' CustomResourceDefinitions, one folder per operator, copied in from the
// operators' modules by tools/build.sh (the repository's crds/ holds only its README).
//
//go:embed all:crds
var crdFiles embed.FS

// customKind is what the API server would hold for one served version of a CRD.
type customKind struct {
	source     string // the file it came from: crds/<operator>/<file>
	namespaced bool
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	rules      *cel.Validator // x-kubernetes-validations; nil without any
}

type customKinds map[schema.GroupVersionKind]*customKind

func loadEmbeddedCRDs() (customKinds, error) {
	kinds := customKinds{}
	err := fs.WalkDir(crdFiles, "crds", func(name string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() || !strings.HasSuffix(name, ".yaml") {
			return err
		}
		data, err := crdFiles.ReadFile(name)
		if err != nil {
			return err
		}
		return addCRDs(kinds, name, data)
	})
	return kinds, err
}

// addCRDs adds the kinds of every CRD in one (possibly multi-document) file; other documents in it
// (a kustomization, say) are no CRDs and are left alone.
func addCRDs(kinds customKinds, name string, data []byte) error {
	docs, err := splitDocuments(name, data)
	if err != nil {
		return err
	}
	for _, doc := range docs {
		if doc.problem != nil {
			return fmt.Errorf("%s: %w", doc.where, doc.problem)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(doc.json, &crd); err != nil {
			return fmt.Errorf("%s: %w", doc.where, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		if err := addCRD(kinds, path.Clean(name), &crd); err != nil {
			return fmt.Errorf("%s: CRD %s: %w", doc.where, crd.Name, err)
		}
	}
	return nil
}

// addCRD builds, per served version, the schema objects the API server's custom resource handler
// builds from a CRD: its structural schema (pruning, defaulting, list types), the OpenAPI validator
// and the CEL rules.
func addCRD(kinds customKinds, source string, crd *apiextensionsv1.CustomResourceDefinition) error {
	for _, served := range crd.Spec.Versions {
		if !served.Served || served.Schema == nil || served.Schema.OpenAPIV3Schema == nil {
			continue
		}
		internal := &apiextensionsinternal.JSONSchemaProps{}
		err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(served.Schema.OpenAPIV3Schema, internal, nil)
		if err != nil {
			return err
		}
		structural, err := structuralschema.NewStructural(internal)
		if err != nil {
			return err
		}
		validator, _, err := validation.NewSchemaValidator(internal)
		if err != nil {
			return err
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: served.Name, Kind: crd.Spec.Names.Kind}
		kinds[gvk] = &customKind{
			source:     source,
			namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			structural: structural,
			validator:  validator,
			rules:      cel.NewValidator(structural, true, celconfig.PerCallLimit),
		}
	}
	return nil
}
