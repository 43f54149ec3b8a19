package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Secret is a secret a command needs, given one of two ways: --NAME (or CODEBANK_NAME) with the
// value itself, or --NAME-file (or CODEBANK_NAME_FILE) with the path of a file that holds it,
// such as a mounted Kubernetes Secret. Its value never appears in usage texts or logs.
type Secret struct {
	name        string
	value, file string
}

// SecretFlag registers the two flags of a secret on fs.
func SecretFlag(fs *flag.FlagSet, name, usage string) *Secret {
	s := &Secret{name: name}
	fs.StringVar(&s.value, name, "", usage)
	fs.StringVar(&s.file, name+"-file", "", "file holding --"+name+" (e.g. a mounted Secret); surrounding white space is ignored")
	return s
}

// Given reports whether the secret was given either way.
func (s *Secret) Given() bool { return s.value != "" || s.file != "" }

// Value returns the secret: the value given, or the content of the file given, trimmed. It is an
// error to give both, or a file that cannot be read or is empty; not giving it returns "".
func (s *Secret) Value() (string, error) {
	switch {
	case s.value != "" && s.file != "":
		return "", fmt.Errorf("%w: give --%s or --%s-file, not both", ErrUsage, s.name, s.name)
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", s.name, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("--%s-file %s is empty", s.name, s.file)
		}
		return v, nil
	}
	return s.value, nil
}

// Required returns the secret, or an error saying how to give it.
func (s *Secret) Required(what string) (string, error) {
	v, err := s.Value()
	if err == nil && v == "" {
		err = fmt.Errorf("%w: %s: set %s or %s (--%s or --%s-file)", ErrUsage, what, EnvName(s.name), EnvName(s.name+"-file"), s.name, s.name)
	}
	return v, err
}

// String returns the flag's name, never its value.
func (s *Secret) String() string { return "--" + s.name }
