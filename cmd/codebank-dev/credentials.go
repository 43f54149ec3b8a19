package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
)

// The demo merchant of a development bank: the Code Store, and the legacy contract's callers.
const (
	devMerchant     = "code-store"
	devMerchantName = "Code Store"
)

// devCredentials are the secrets and API keys of a development bank. Only the developer tools
// make them (a serving role refuses to start without its own); `codebank-dev run` keeps them in
// its data directory so that cards and keys outlive a restart:
//
//	secrets.env      the roles' secrets, as CODEBANK_* variables
//	api-keys         the keys file: the hashes of the keys below
//	credentials.env  CODEBANK_MERCHANT_KEY and CODEBANK_ADMIN_KEY, which the CLI reads by itself
type devCredentials struct {
	// Env are the roles' secrets and the keys file, as CODEBANK_* variables.
	Env []string
	// Keys are the merchant's, the admin's and the pages' keys.
	Keys grpcgateway.CallerKeys
	// CredentialsFile is credentials.env.
	CredentialsFile string
}

// loadDevCredentials reads the credentials kept in dir, making them the first time.
func loadDevCredentials(dir string) (devCredentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return devCredentials{}, err
	}
	secretsFile, keysFile, credsFile := filepath.Join(dir, "secrets.env"), filepath.Join(dir, "api-keys"), filepath.Join(dir, "credentials.env")
	secrets, err1 := readEnvFile(secretsFile)
	creds, err2 := readEnvFile(credsFile)
	_, err3 := os.Stat(keysFile)
	if err := errors.Join(err1, err2, err3); errors.Is(err, os.ErrNotExist) {
		if secrets, creds, err = makeDevCredentials(secretsFile, keysFile, credsFile); err != nil {
			return devCredentials{}, err
		}
	} else if err != nil {
		return devCredentials{}, err
	}
	d := devCredentials{
		Keys: grpcgateway.CallerKeys{Merchant: creds["CODEBANK_MERCHANT_KEY"], Admin: creds["CODEBANK_ADMIN_KEY"],
			Pages: secrets["CODEBANK_PAGES_KEY"], Insecure: true},
		CredentialsFile: credsFile,
	}
	for _, name := range []string{"CODEBANK_TOKEN_KEY", "CODEBANK_CARD_KEYS", "CODEBANK_STORE_SECRET", "CODEBANK_PAGES_KEY"} {
		if secrets[name] == "" {
			return devCredentials{}, fmt.Errorf("%s has no %s: delete it to make new credentials", secretsFile, name)
		}
		d.Env = append(d.Env, name+"="+secrets[name])
	}
	d.Env = append(d.Env, "CODEBANK_MERCHANT_KEY="+d.Keys.Merchant, "CODEBANK_API_KEYS_FILE="+keysFile)
	return d, nil
}

// makeDevCredentials makes new secrets and keys and writes the three files.
func makeDevCredentials(secretsFile, keysFile, credsFile string) (secrets, creds map[string]string, err error) {
	random := func() string {
		b := make([]byte, 48)
		rand.Read(b)
		return base64.RawStdEncoding.EncodeToString(b)
	}
	key := func(p apikey.Principal, lines *[]string) string {
		k, err := apikey.New(p.KeyID)
		if err != nil {
			panic(err) // the ids below are valid
		}
		*lines = append(*lines, apikey.Line(p, k))
		return k
	}
	var lines []string
	merchant := key(apikey.Principal{KeyID: "dev-store", Role: apikey.Merchant, Merchant: devMerchant, MerchantName: devMerchantName}, &lines)
	admin := key(apikey.Principal{KeyID: "dev-admin", Role: apikey.Admin}, &lines)
	pages := key(apikey.Principal{KeyID: "dev-pages", Role: apikey.Pages}, &lines)
	secrets = map[string]string{"CODEBANK_TOKEN_KEY": random(), "CODEBANK_CARD_KEYS": "dev1:" + random(),
		"CODEBANK_STORE_SECRET": random(), "CODEBANK_PAGES_KEY": pages}
	creds = map[string]string{"CODEBANK_MERCHANT_KEY": merchant, "CODEBANK_ADMIN_KEY": admin}
	files := map[string]string{
		keysFile: "# Development API keys (codebank-dev run): key id, role, SHA-256 of the key, merchant\n" + strings.Join(lines, "\n") + "\n",
		secretsFile: "# Development secrets (codebank-dev run): never use them elsewhere\n" +
			envLines(secrets, "CODEBANK_TOKEN_KEY", "CODEBANK_CARD_KEYS", "CODEBANK_STORE_SECRET", "CODEBANK_PAGES_KEY"),
		credsFile: "# Development API keys of the codebank CLI (codebank-dev run)\n" + envLines(creds, "CODEBANK_MERCHANT_KEY", "CODEBANK_ADMIN_KEY"),
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			return nil, nil, err
		}
	}
	return secrets, creds, nil
}

func envLines(m map[string]string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + "=" + m[n] + "\n")
	}
	return b.String()
}

// readEnvFile reads NAME=value lines.
func readEnvFile(name string) (map[string]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, nil
}
