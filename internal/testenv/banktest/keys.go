package banktest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
)

// The merchants of test deployments: the store's, and another that reuses its transaction ids.
const (
	Merchant          = "code-store"
	MerchantName      = "Code Store"
	OtherMerchant     = "other-shop"
	OtherMerchantName = "Other Shop"
)

// The API keys of test deployments, made once per test binary: a key of each role, a second
// merchant's, and the keys file that lists them all.
var (
	MerchantKey, OtherMerchantKey, AdminKey, PagesKey string
	// Callers sends, with each call, the key of the role that may make it.
	Callers grpcgateway.CallerKeys

	keysOnce sync.Once
	keysText string
	keySet   *apikey.Set
)

func makeKeys(testing.TB) {
	keysOnce.Do(func() {
		var lines []string
		add := func(p apikey.Principal) string {
			k, err := apikey.New(p.KeyID)
			if err != nil {
				panic(err)
			}
			lines = append(lines, apikey.Line(p, k))
			return k
		}
		MerchantKey = add(apikey.Principal{KeyID: "test-store", Role: apikey.Merchant, Merchant: Merchant, MerchantName: MerchantName})
		OtherMerchantKey = add(apikey.Principal{KeyID: "test-other", Role: apikey.Merchant, Merchant: OtherMerchant, MerchantName: OtherMerchantName})
		AdminKey = add(apikey.Principal{KeyID: "test-ops", Role: apikey.Admin})
		PagesKey = add(apikey.Principal{KeyID: "test-pages", Role: apikey.Pages})
		Callers = grpcgateway.CallerKeys{Merchant: MerchantKey, Admin: AdminKey, Pages: PagesKey, Insecure: true}
		keysText = "# test deployment keys\n" + strings.Join(lines, "\n") + "\n"
		set, err := apikey.Parse(strings.NewReader(keysText))
		if err != nil {
			panic(err)
		}
		keySet = set
	})
}

// APIKeys returns the keys of test deployments, as the bank reads them.
func APIKeys(t testing.TB) *apikey.Set {
	makeKeys(t)
	return keySet
}

// KeysFile writes the test deployments' keys file into a directory of the test and returns its
// path, for a codebank process.
func KeysFile(t testing.TB) string {
	t.Helper()
	makeKeys(t)
	path := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(path, []byte(keysText), 0o600); err != nil {
		t.Fatalf("write the test keys file: %v", err)
	}
	return path
}

func init() { makeKeys(nil) }

// StoreSecret signs the test store's order ids and statement views.
const StoreSecret = "integration tests' store secret: 32+ bytes long"

// Env returns the environment of a codebank process of a test deployment: its secrets, the keys
// file and the keys of the CLI and the pages, as CODEBANK_* variables.
func Env(t testing.TB) []string {
	t.Helper()
	makeKeys(t)
	return []string{"CODEBANK_TOKEN_KEY=" + TokenKey, "CODEBANK_CARD_KEYS=" + CardKeys, "CODEBANK_API_KEYS_FILE=" + KeysFile(t),
		"CODEBANK_STORE_SECRET=" + StoreSecret, "CODEBANK_MERCHANT_KEY=" + MerchantKey, "CODEBANK_ADMIN_KEY=" + AdminKey, "CODEBANK_PAGES_KEY=" + PagesKey}
}
