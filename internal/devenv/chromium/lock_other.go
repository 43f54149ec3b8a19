//go:build !unix

package chromium

// lockFile is a no-op where there is no flock; apt-get, which needs it, is not there either.
func lockFile(string) (func(), error) { return func() {}, nil }
