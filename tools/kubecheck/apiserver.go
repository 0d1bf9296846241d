package main

import (
	"context"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/autoscaling/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	_ "k8s.io/kubernetes/pkg/apis/rbac/install"
	"k8s.io/kubernetes/pkg/registry/apps/daemonset"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	"k8s.io/kubernetes/pkg/registry/apps/statefulset"
	"k8s.io/kubernetes/pkg/registry/autoscaling/horizontalpodautoscaler"
	"k8s.io/kubernetes/pkg/registry/batch/cronjob"
	"k8s.io/kubernetes/pkg/registry/batch/job"
	"k8s.io/kubernetes/pkg/registry/core/configmap"
	"k8s.io/kubernetes/pkg/registry/core/namespace"
	"k8s.io/kubernetes/pkg/registry/core/persistentvolumeclaim"
	"k8s.io/kubernetes/pkg/registry/core/secret"
	"k8s.io/kubernetes/pkg/registry/core/service"
	"k8s.io/kubernetes/pkg/registry/core/serviceaccount"
	"k8s.io/kubernetes/pkg/registry/networking/ingress"
	"k8s.io/kubernetes/pkg/registry/networking/networkpolicy"
	"k8s.io/kubernetes/pkg/registry/policy/poddisruptionbudget"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrole"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrolebinding"
	"k8s.io/kubernetes/pkg/registry/rbac/role"
	"k8s.io/kubernetes/pkg/registry/rbac/rolebinding"
)

// strategies: the API server's own create strategy (k8s.io/kubernetes/pkg/registry) of each built-in
// kind kubecheck validates. A built-in kind missing here fails rather than passing on its decoding
// alone; adding it is one line (Pods are left out: their registry package brings the kubelet client).
var strategies = map[schema.GroupKind]rest.RESTCreateStrategy{
	{Group: "apps", Kind: "Deployment"}:                              deployment.Strategy,
	{Group: "apps", Kind: "StatefulSet"}:                             statefulset.Strategy,
	{Group: "apps", Kind: "DaemonSet"}:                               daemonset.Strategy,
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}:          horizontalpodautoscaler.Strategy,
	{Group: "batch", Kind: "Job"}:                                    job.Strategy,
	{Group: "batch", Kind: "CronJob"}:                                cronjob.Strategy,
	{Kind: "ConfigMap"}:                                              configmap.Strategy,
	{Kind: "Namespace"}:                                              namespace.Strategy,
	{Kind: "PersistentVolumeClaim"}:                                  persistentvolumeclaim.Strategy,
	{Kind: "Secret"}:                                                 secret.Strategy,
	{Kind: "Service"}:                                                service.Strategy,
	{Kind: "ServiceAccount"}:                                         serviceaccount.Strategy,
	{Group: "networking.k8s.io", Kind: "Ingress"}:                    ingress.Strategy,
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:              networkpolicy.Strategy,
	{Group: "policy", Kind: "PodDisruptionBudget"}:                   poddisruptionbudget.Strategy,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:               role.Strategy,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:        rolebinding.Strategy,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        clusterrole.Strategy,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: clusterrolebinding.Strategy,
}

// requestNamespace: rendered manifests leave the namespace to the install (helm -n); the request
// that creates them names one.
const requestNamespace = "default"

// validateAsServer runs what the API server runs on a create after decoding: the version's defaults,
// conversion to the internal type, then the kind's strategy (PrepareForCreate and Validate, the
// declarative rules included), as rest.BeforeCreate does; it returns the field errors.
func validateAsServer(obj runtime.Object, gvk schema.GroupVersionKind) []string {
	strategy, found := strategies[gvk.GroupKind()]
	if !found {
		return []string{fmt.Sprintf("kubecheck does not run the API server's validation of %s yet: add its registry strategy (apiserver.go)", gvk.GroupKind())}
	}
	legacyscheme.Scheme.Default(obj)
	internal, err := legacyscheme.Scheme.ConvertToVersion(obj, schema.GroupVersion{Group: gvk.Group, Version: runtime.APIVersionInternal})
	if err != nil {
		return []string{err.Error()}
	}
	meta, err := metaOf(internal)
	if err != nil {
		return []string{err.Error()}
	}
	if strategy.NamespaceScoped() && meta.GetNamespace() == "" {
		meta.SetNamespace(requestNamespace)
	}
	ctx := createRequest(gvk, meta)
	rest.FillObjectMetaSystemFields(meta)
	strategy.PrepareForCreate(ctx, internal)
	var problems []string
	for _, fieldErr := range rest.ValidateCreate(ctx, internal, strategy) {
		problems = append(problems, fieldErr.Error())
	}
	return problems
}

// createRequest: the context of the create request the handler would serve (declarative validation
// names its rules after the request's resource).
func createRequest(gvk schema.GroupVersionKind, meta metav1.Object) context.Context {
	resource, _ := apimeta.UnsafeGuessKindToResource(gvk)
	ctx := genericapirequest.WithNamespace(genericapirequest.NewContext(), meta.GetNamespace())
	return genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
		IsResourceRequest: true, Verb: "create", APIPrefix: "apis", APIGroup: gvk.Group, APIVersion: gvk.Version,
		Namespace: meta.GetNamespace(), Resource: resource.Resource, Name: meta.GetName(),
	})
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	meta, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return meta, nil
}
