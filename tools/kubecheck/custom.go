package main

import (
	"context"
	"fmt"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// check runs the steps of the API server's create of a custom resource with strict field
// validation: unknown fields (pruned there, an error here), defaults, the OpenAPI schema, embedded
// object metadata, list-type invariants, then the CEL rules (as there, only when the rest passed).
func (k *customKind) check(data []byte) []string {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return []string{err.Error()}
	}
	problems := k.unknownFields(u)
	defaulting.Default(u.Object, k.structural)
	errs := k.validate(u)
	if len(errs) == 0 && len(problems) == 0 {
		rules, _ := k.rules.Validate(context.Background(), nil, k.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, rules...)
	}
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	return problems
}

// unknownFields: the fields the schema does not declare, in metadata and elsewhere; removes them.
func (k *customKind) unknownFields(u *unstructured.Unstructured) []string {
	var problems []string
	metaErr, unknownMeta := objectmeta.CoerceWithOptions(nil, u.Object, k.structural, true,
		objectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if metaErr != nil {
		problems = append(problems, metaErr.Error())
	}
	unknown := pruning.PruneWithOptions(u.Object, k.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, path := range append(unknownMeta, unknown...) {
		problems = append(problems, fmt.Sprintf("unknown field %q", path))
	}
	return problems
}

func (k *customKind) validate(u *unstructured.Unstructured) field.ErrorList {
	// Rendered manifests leave the namespace to the install (helm -n); the request supplies it.
	if k.namespaced && u.GetNamespace() == "" {
		u.SetNamespace("default")
	}
	errs := apivalidation.ValidateObjectMetaAccessor(u, k.namespaced, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	errs = append(errs, validation.ValidateCustomResource(nil, u.Object, k.validator)...)
	errs = append(errs, objectmeta.Validate(context.Background(), nil, u.Object, k.structural, false)...)
	return append(errs, listtype.ValidateListSetsAndMaps(nil, k.structural, u.Object)...)
}
