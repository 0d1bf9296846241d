package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// document is one object of a multi-document file, as JSON, with where it came from; problem is
// set when the YAML itself is at fault (json is then the lenient reading, for the object's label).
type document struct {
	where   string
	json    []byte
	problem error
}

// splitDocuments cuts a multi-document YAML file into its objects. Strict conversion: a key that
// appears twice in a mapping is an error, as it is for the API server's strict field validation,
// rather than the last one silently winning.
func splitDocuments(name string, data []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for index := 1; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		converted, problem := yaml.YAMLToJSONStrict(raw)
		if problem != nil {
			if converted, err = yaml.YAMLToJSON(raw); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", name, index, err)
			}
		}
		// Helm leaves documents that hold only comments (a template rendered to nothing).
		if trimmed := bytes.TrimSpace(converted); len(trimmed) == 0 || string(trimmed) == "null" {
			continue
		}
		where := fmt.Sprintf("%s, document %d", name, index)
		docs = append(docs, document{where: where, json: converted, problem: problem})
	}
}
