// otelcol is the OpenTelemetry Collector of this stack: the collector's own command (run, validate,
// components, print-config, featuregate) with only the components the stack's log pipeline uses,
// instead of the few hundred of the contrib distribution:
//
//	receivers   file_log (the app's JSON log file), otlp
//	processors  transform
//	exporters   elasticsearch, debug
//	extensions  file_storage (file_log's offsets and the exporter's queue survive a restart), health_check
//	providers   env, file, yaml (for --config)
//
// Every module is at one release (go.mod: core v0.156.0, its stable modules v1.62.0, contrib
// v0.156.0); tools/build.sh builds it as `otelcol` and sets version (-X main.version=...), which
// `otelcol --version` prints.
package main

import (
	"os"
	"runtime/debug"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/elasticsearchexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// version is set at build time; it starts with the collector release that go.mod selects.
var version = "dev"

const contrib = "github.com/open-telemetry/opentelemetry-collector-contrib"

// withModule pairs a factory with the Go module that provides it, for `otelcol components`.
type withModule[F component.Factory] struct {
	factory F
	module  string
}

func receivers() []withModule[receiver.Factory] {
	return []withModule[receiver.Factory]{
		{filelogreceiver.NewFactory(), contrib + "/receiver/filelogreceiver"},
		{otlpreceiver.NewFactory(), "go.opentelemetry.io/collector/receiver/otlpreceiver"},
	}
}

func processors() []withModule[processor.Factory] {
	return []withModule[processor.Factory]{
		{transformprocessor.NewFactory(), contrib + "/processor/transformprocessor"},
	}
}

func exporters() []withModule[exporter.Factory] {
	return []withModule[exporter.Factory]{
		{elasticsearchexporter.NewFactory(), contrib + "/exporter/elasticsearchexporter"},
		{debugexporter.NewFactory(), "go.opentelemetry.io/collector/exporter/debugexporter"},
	}
}

func extensions() []withModule[extension.Factory] {
	return []withModule[extension.Factory]{
		{filestorage.NewFactory(), contrib + "/extension/storage/filestorage"},
		{healthcheckextension.NewFactory(), contrib + "/extension/healthcheckextension"},
	}
}

// moduleVersions maps each module this binary was built from to "path version", as the collector's
// builder writes them into `components`; the versions come from the binary, not from a list here.
func moduleVersions() map[string]string {
	versions := map[string]string{}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			versions[dep.Path] = dep.Path + " " + dep.Version
		}
	}
	return versions
}

// factoryMaps turns a component list into the two maps otelcol.Factories holds: type -> factory (a
// deprecated alias such as file_log's `filelog` included) and type -> module.
func factoryMaps[F component.Factory](list []withModule[F], versions map[string]string) (map[component.Type]F, map[component.Type]string, error) {
	factories := make([]F, 0, len(list))
	modules := map[component.Type]string{}
	for _, entry := range list {
		factories = append(factories, entry.factory)
		modules[entry.factory.Type()] = versions[entry.module]
	}
	byType, err := otelcol.MakeFactoryMap(factories...)
	return byType, modules, err
}

func components() (otelcol.Factories, error) {
	versions := moduleVersions()
	var (
		f   = otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
		err error
	)
	if f.Receivers, f.ReceiverModules, err = factoryMaps(receivers(), versions); err != nil {
		return f, err
	}
	if f.Processors, f.ProcessorModules, err = factoryMaps(processors(), versions); err != nil {
		return f, err
	}
	if f.Exporters, f.ExporterModules, err = factoryMaps(exporters(), versions); err != nil {
		return f, err
	}
	f.Extensions, f.ExtensionModules, err = factoryMaps(extensions(), versions)
	return f, err
}

func main() {
	versions := moduleVersions()
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol",
			Description: "OpenTelemetry Collector of observability-stack (the app's log file into Elasticsearch)",
			Version:     version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(), fileprovider.NewFactory(), yamlprovider.NewFactory(),
				},
				// A bare ${NAME} in a configuration file is an environment variable, as upstream's.
				DefaultScheme: "env",
			},
		},
		ProviderModules: map[string]string{
			"env":  versions["go.opentelemetry.io/collector/confmap/provider/envprovider"],
			"file": versions["go.opentelemetry.io/collector/confmap/provider/fileprovider"],
			"yaml": versions["go.opentelemetry.io/collector/confmap/provider/yamlprovider"],
		},
	}
	// The command prints its own error (cobra's "Error: ..."); only the exit status is left to say.
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		os.Exit(1)
	}
}
