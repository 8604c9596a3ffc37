package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Setting is one key of the config file: a flag's long name and the values
// to set it to (several for a list), with where it was written.
type Setting struct {
	Key    string
	Values []string
	Line   int
}

// ReadConfig reads a YAML config file whose keys are the agent's flag
// names. Scalars and lists of scalars only; errors name the line.
func ReadConfig(path string) ([]Setting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: line %d: want a mapping of flag names to values", path, root.Line)
	}
	var out []Setting
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if prev, ok := seen[k.Value]; ok {
			return nil, fmt.Errorf("config %s: line %d: %s given twice (first on line %d)", path, k.Line, k.Value, prev)
		}
		seen[k.Value] = k.Line
		s := Setting{Key: k.Value, Line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue // a key with nothing after it: the default
			}
			s.Values = []string{v.Value}
		case yaml.SequenceNode:
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("config %s: line %d: %s: want a list of plain values", path, e.Line, k.Value)
				}
				s.Values = append(s.Values, e.Value)
			}
			if len(s.Values) == 0 {
				s.Values = []string{} // an empty list: none
			}
		default:
			return nil, fmt.Errorf("config %s: line %d: %s: want a value or a list of values", path, v.Line, k.Value)
		}
		out = append(out, s)
	}
	return out, nil
}

// ConfigError is a config file's setting the flags refused.
type ConfigError struct {
	Path string
	S    Setting
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config %s: line %d: %s: %v", e.Path, e.S.Line, e.S.Key, e.Err)
}

// ErrUnknownKey is a key that names no flag.
var ErrUnknownKey = errors.New("not a flag of tcplens agent")
