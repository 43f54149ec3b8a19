package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// PublishedDir is where the published demo secrets are, from the repository's root.
const PublishedDir = "deploy/compose/demo-secrets"

// published are the secrets of PublishedDir, published with the source code so that `docker
// compose up` starts a bank without asking anything, by their SHA-256 (hex), with the file each
// comes from. The API keys' are the hashes of that directory's keys file. A bank that uses any
// of them has no secret at all: every role refuses them (CheckPublished) unless its
// --demo-secrets flag, which only compose.yaml sets, says it is that demo.
// TestPublishedDemoSecrets checks this list against the files.
var published = map[string]string{
	"22bf6761bb5d81f8e0c134fa92cba297ddf5854134b1e731dddd513343f9b967": "token-key",
	"c23a7eca49879c8cdcd717bb642a7ba964a9e89bbfc23b9986e97f4caa669da2": "card-keys",
	"8ff79b89674a1bbebcef59e7c3d728d17e54f9b8afab03b761125cae1a2ded4a": "store-secret",
	"87d438c12ce494a90e7f68308fa99a0ed23b6930ee3822ccfef2aaaa518d15b0": "merchant-key",
	"65a109cb5b786352295d5b6a21148e35586f5b43967b6575315fc9a28d438690": "pages-key",
	"10149121e01774a59e33d8a7ef789a15973526cce9ee1c65c6a6922b721035c6": "credentials.env",
}

// PublishedHash returns the file of PublishedDir whose secret has SHA-256 sum, if any: an API
// key's hash in a keys file, for one.
func PublishedHash(sum [sha256.Size]byte) (string, bool) {
	f, ok := published[hex.EncodeToString(sum[:])]
	return f, ok
}

// Published returns the file of PublishedDir that holds secret, if any.
func Published(secret []byte) (string, bool) { return PublishedHash(sha256.Sum256(secret)) }

// CheckPublished returns an error naming what (a flag, a key) when secret is one of the
// published demo secrets and allowDemo does not allow them.
func CheckPublished(what string, secret []byte, allowDemo bool) error {
	if allowDemo {
		return nil
	}
	if f, ok := Published(secret); ok {
		return PublishedError(what, f)
	}
	return nil
}

// PublishedError is the refusal of a published demo secret: what names it, file is its file of
// PublishedDir.
func PublishedError(what, file string) error {
	return fmt.Errorf("%w: %s is the demo secret %s/%s, published with the source code: a bank that uses it has no secret at all; "+
		"make your own (%s/README.md says how), or give --demo-secrets for the Compose demo", ErrUsage, what, PublishedDir, file, PublishedDir)
}
