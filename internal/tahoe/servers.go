package tahoe

import (
	"bytes"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
)

// Server is one storage server for servers.yaml.
type Server struct {
	Key announce.NodeID
	Ann Ann
}

type serverEntry struct {
	Ann Ann `yaml:"ann"`
}

type serversDoc struct {
	Storage map[string]serverEntry `yaml:"storage"`
}

// EncodeServers renders a Tahoe servers.yaml listing servers, ordered by
// key. header and footer are written as comments before and after, one
// line each (Tahoe ignores comments). The output depends only on the
// arguments, so an unchanged set gives identical bytes.
func EncodeServers(servers []Server, header, footer []string) ([]byte, error) {
	doc := serversDoc{Storage: map[string]serverEntry{}}
	for _, s := range servers {
		a := s.Ann
		a.NURLs = slices.Clone(a.NURLs)
		doc.Storage[string(s.Key)] = serverEntry{Ann: a}
	}
	var b bytes.Buffer
	comment(&b, header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	comment(&b, footer)
	return b.Bytes(), nil
}

func comment(b *bytes.Buffer, lines []string) {
	for _, l := range lines {
		l = strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, l)
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}
