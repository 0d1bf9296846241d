// Command promql-names reports the metric names each PromQL expression selects, so that tests can
// check rules and dashboards against the metrics the service really exports.
//
// Input on stdin: one JSON array of expressions. Output on stdout: one JSON array with, per
// expression, {"expr", "metrics", "error"}; a parse error is reported in "error" (metrics empty),
// never as a non-zero exit, so one bad expression does not hide the others. `--version` prints the
// version tools/build.sh stamped in, which names the source it was built from.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
	Error   *string  `json:"error"`
}

// metricNames returns the sorted, distinct names of every vector selector in expr: the bare name,
// or the value of an equality matcher on __name__ ({__name__="x"}).
func metricNames(expr parser.Expr) []string {
	names := []string{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if name == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name != "" {
				names = append(names, name)
			}
		}
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println(version.Print("promql-names"))
		return
	}
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "promql-names: stdin must be one JSON array of strings:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	results := make([]result, 0, len(exprs))
	for _, text := range exprs {
		r := result{Expr: text, Metrics: []string{}}
		if expr, err := p.ParseExpr(text); err != nil {
			msg := err.Error()
			r.Error = &msg
		} else {
			r.Metrics = metricNames(expr)
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "promql-names:", err)
		os.Exit(1)
	}
}
