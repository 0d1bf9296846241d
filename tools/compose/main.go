// compose-check loads compose files the way `docker compose` does (compose-go: schema validation,
// interpolation from an env file, extends, merging, normalisation) without a Docker engine or the
// compose plugin, and prints the result as JSON for the static tests:
//
//	{"project": <the normalised project, every profile enabled>,
//	 "model":   <the merged files before interpolation, with ${VAR} references kept>}
//
// Usage:
//
//	compose-check -env-file FILE [-project-dir DIR] COMPOSE_FILE...
//	compose-check --version
//
// A load error (invalid schema, a required variable unset, a service that depends on an unknown
// one) is printed to stderr and exits 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/compose-spec/compose-go/v2/cli"
)

// version is set at build time (tools/build.sh: -X main.version=...): it names the source, so that
// an edit makes build.sh build again.
var version = "dev"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	envFile := flag.String("env-file", "", "the .env whose values are interpolated (required)")
	projectDir := flag.String("project-dir", "", "the project directory (default: the first file's directory)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: compose-check -env-file FILE [-project-dir DIR] COMPOSE_FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Printf("compose-check, version %s (compose-go %s)\n", version, composeGoVersion())
		return
	}
	if *envFile == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	out, err := check(context.Background(), flag.Args(), *envFile, *projectDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}

func check(ctx context.Context, files []string, envFile, projectDir string) ([]byte, error) {
	// Only the env file counts: the shell's variables must not hide a variable missing from it.
	common := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(projectDir),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithName("observability-stack"),
		cli.WithProfiles([]string{"*"}),
	}
	options, err := cli.NewProjectOptions(files, common...)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := cli.NewProjectOptions(files, append(common, cli.WithInterpolation(false), cli.WithNormalization(false),
		cli.WithResolvedPaths(false), cli.WithoutEnvironmentResolution)...)
	if err != nil {
		return nil, err
	}
	model, err := raw.LoadModel(ctx)
	if err != nil {
		return nil, fmt.Errorf("raw model: %w", err)
	}
	return json.MarshalIndent(map[string]any{"project": project, "model": model}, "", "  ")
}

func composeGoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/compose-spec/compose-go/v2" {
				return dep.Version
			}
		}
	}
	return "unknown"
}
