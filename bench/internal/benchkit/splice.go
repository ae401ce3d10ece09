package benchkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Splice replaces the generated part named section of the Markdown file doc with
// fragment: the lines between "<!-- bench:section -->" and "<!-- /bench:section -->".
// A section whose markers are missing is an error naming them, so that a renamed
// heading never makes a table land in the wrong place. The file is replaced
// atomically.
func Splice(doc, section, fragment string) error {
	b, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	out, err := SpliceText(string(b), section, fragment)
	if err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(doc), ".bench-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), doc)
}

// SpliceText is Splice on a string.
func SpliceText(doc, section, fragment string) (string, error) {
	begin, end := "<!-- bench:"+section+" -->", "<!-- /bench:"+section+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < 0 || j < i {
		return "", fmt.Errorf("no generated section %q: add the lines %s and %s where its tables go", section, begin, end)
	}
	if strings.Count(doc, begin) > 1 || strings.Count(doc, end) > 1 {
		return "", fmt.Errorf("the generated section %q is marked more than once", section)
	}
	body := "\n" + strings.TrimSpace(fragment) + "\n"
	return doc[:i+len(begin)] + body + doc[j:], nil
}
