package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/apikey"
)

// TestComposeFile: compose.yaml, which no Docker engine runs here, is read by the library Docker
// Compose itself is built on (compose-go, schema validation and interpolation as `docker compose`
// does them, with no variable set) and checked against the code and the files it names:
//
//   - every image is pinned to a version, and so is every base image of the Dockerfiles it builds;
//   - every Code Bank service runs a codebank command whose flags, given on its command line or as
//     CODEBANK_* variables, are that command's own: each role is started here with exactly its
//     service's command and variables (files mapped to the mounted ones) and must get past its
//     configuration to reach for Kafka, as TestKubernetesManifests does for the pods;
//   - ports are those the roles listen on, health checks ask the roles' own operations port, and
//     Prometheus scrapes each of them;
//   - every file or directory mounted, built from or given as a secret exists, and every
//     "service:port" named anywhere is a service listening on that port, started before the
//     service that needs it;
//   - long-running services have health checks, one-shots are waited for as such, and the Grafana
//     dashboards find their datasource.
func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	t.Run("images pinned", c.checkImages)
	t.Run("files exist", c.checkFiles)
	t.Run("start order and health", c.checkStartOrder)
	t.Run("codebank services", c.checkCodebankServices)
	t.Run("addresses", c.checkAddresses)
	t.Run("prometheus", c.checkPrometheus)
	t.Run("grafana", c.checkGrafana)
	t.Run("connect", c.checkConnect)
	t.Run("demo secrets", c.checkDemoSecrets)
}

// composeCheck is compose.yaml as Compose reads it, with what the checks share.
type composeCheck struct {
	root    string // the repository
	project *types.Project
	// roles are the Code Bank services (built from the Dockerfile at the root), by name.
	roles map[string]*codebankService
}

// codebankService is a service running the codebank image.
type codebankService struct {
	name    string
	command []string                  // codebank COMMAND [flags]
	env     map[string]string         // its CODEBANK_* variables
	flags   map[string]commandFlagDoc // the flags of its command, by name
}

// commandFlagDoc is a flag as a command's --help shows it.
type commandFlagDoc struct{ env, def string }

// servingCommands are the codebank commands a Compose service may run for good or once.
var servingCommands = []string{"setup", "ingress", "authorizer", "statements", "web", "all"}

// toolCommands are the CLI commands a service running `codebank help` (the cli service) is there
// for: its variables must be flags of some of them.
var toolCommands = [][]string{{"cards", "issue"}, {"cards", "get"}, {"pay"}, {"statement"}, {"audit"}, {"analytics"}}

func loadCompose(t *testing.T) *composeCheck {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// Compose warns through logrus about a variable that is not set (and uses ""): with none set,
	// every ${VAR} must have a default and every literal $ be written $$.
	var warnings bytes.Buffer
	out := logrus.StandardLogger().Out
	logrus.SetOutput(&warnings)
	defer logrus.SetOutput(out)
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		composecli.WithWorkingDirectory(root),
		composecli.WithInterpolation(true),
		composecli.WithProfiles([]string{"*"}), // every service, the cli one's profile too
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if strings.Contains(warnings.String(), "is not set") {
		t.Errorf("compose.yaml uses variables that are not set: %s", warnings.String())
	}
	if len(p.DisabledServices) > 0 {
		t.Fatalf("services left out by their profiles: %v", slices.Sorted(maps.Keys(p.DisabledServices)))
	}

	c := &composeCheck{root: root, project: p, roles: map[string]*codebankService{}}
	for name, s := range p.Services {
		if !c.buildsCodebank(s) {
			continue
		}
		r := &codebankService{name: name, command: s.Command, env: map[string]string{}}
		for k, v := range s.Environment {
			if !strings.HasPrefix(k, "CODEBANK_") {
				continue
			}
			if v == nil {
				t.Errorf("%s: %s is taken from the environment of whoever runs compose: give it a value", name, k)
				continue
			}
			r.env[k] = *v
		}
		if len(s.Command) == 0 {
			t.Errorf("%s: no command: the image alone prints its help and exits", name)
		} else if _, ok := program.Commands[s.Command[0]]; !ok && s.Command[0] != "help" {
			t.Errorf("%s: codebank %s is no command of the binary", name, s.Command[0])
		} else if s.Command[0] != "help" {
			r.flags = commandFlags(t, s.Command[0])
		} else { // the CLI, on demand: the flags of the commands it is there for
			r.flags = map[string]commandFlagDoc{}
			for _, argv := range toolCommands {
				for flag, f := range commandFlags(t, argv...) {
					if _, ok := r.flags[flag]; !ok {
						r.flags[flag] = f
					}
				}
			}
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("%s: entrypoint %v replaces the image's /codebank", name, s.Entrypoint)
		}
		c.roles[name] = r
	}
	return c
}

// buildsCodebank reports whether s runs the image of the Dockerfile at the root.
func (c *composeCheck) buildsCodebank(s types.ServiceConfig) bool {
	if s.Build == nil {
		return false
	}
	return s.Build.Context == c.root && filepath.Join(s.Build.Context, s.Build.Dockerfile) == filepath.Join(c.root, "Dockerfile")
}

// commandFlags returns the flags of codebank ARGV... from its --help.
func commandFlags(t *testing.T, argv ...string) map[string]commandFlagDoc {
	t.Helper()
	var help bytes.Buffer
	if err := program.Run(context.Background(), append(slices.Clone(argv), "--help"), &help, &help); err != nil {
		t.Fatalf("codebank %s --help: %v", strings.Join(argv, " "), err)
	}
	flags := map[string]commandFlagDoc{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)  \[(CODEBANK_[A-Z0-9_]+)\]\n      (.*)$`).FindAllStringSubmatch(help.String(), -1) {
		f := commandFlagDoc{env: m[2]}
		if d := regexp.MustCompile(`\(default ([^()]*)\)$`).FindStringSubmatch(m[3]); d != nil {
			f.def = d[1]
		}
		flags[m[1]] = f
	}
	if len(flags) == 0 {
		t.Fatalf("codebank %s --help lists no flags: %s", strings.Join(argv, " "), help.String())
	}
	return flags
}

// value returns what flag name of r is set to: its last occurrence on the command line (as with
// the flag package), else its variable, else its default.
func (r *codebankService) value(name string) (string, bool) {
	f, ok := r.flags[name]
	if !ok {
		return "", false
	}
	v, found := "", false
	args := r.command[1:]
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		if a == name && i+1 < len(args) {
			v, found = args[i+1], true
			i++
		} else if val, ok := strings.CutPrefix(a, name+"="); ok {
			v, found = val, true
		}
	}
	if found {
		return v, true
	}
	if e, ok := r.env[f.env]; ok {
		return e, true
	}
	return f.def, true
}

// listenPorts returns the ports r's command listens on, by flag.
func (r *codebankService) listenPorts() map[string]string {
	ports := map[string]string{}
	for _, flag := range []string{"grpc-addr", "http-addr", "ops-addr"} {
		if v, ok := r.value(flag); ok && v != "" {
			if i := strings.LastIndex(v, ":"); i >= 0 {
				ports[flag] = v[i+1:]
			}
		}
	}
	return ports
}

// longRunning reports whether s is meant to run for good (a restart policy other than "no").
func longRunning(s types.ServiceConfig) bool {
	return s.Restart != "" && s.Restart != types.RestartPolicyNo
}

// sortedServices returns the services by name, so that failures come in a stable order.
func (c *composeCheck) sortedServices() []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, name := range slices.Sorted(maps.Keys(c.project.Services)) {
		out = append(out, c.project.Services[name])
	}
	return out
}

// versionTag is a tag that names a version: 4.1.1, v3.5.0, 21.0.7_6-jdk-alpine; not latest,
// and not a bare major such as 21-jdk.
var versionTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+([._-][0-9A-Za-z._-]+)?$`)

// unversionedBases are base images that publish no version tags, with why they are accepted.
var unversionedBases = map[string]string{
	"gcr.io/distroless/static:nonroot": "distroless publishes rolling tags and digests only; pin the digest when releasing",
}

func (c *composeCheck) checkImages(t *testing.T) {
	for _, s := range c.sortedServices() {
		if s.Build == nil {
			if !pinnedImage(s.Image) {
				t.Errorf("%s: image %q is not pinned to a version", s.Name, s.Image)
			}
			continue
		}
		// Built here: a local name with a tag, so that `docker compose build` never overwrites
		// :latest of anything; and the bases it is built from are pinned.
		ref, err := reference.ParseNormalizedNamed(s.Image)
		if tagged, ok := ref.(reference.Tagged); err != nil || !ok || tagged.Tag() == "latest" {
			t.Errorf("%s: the image it builds is named %q: give it a tag other than latest", s.Name, s.Image)
		}
		c.checkDockerfile(t, s)
	}
}

// checkDockerfile checks that the base images of the Dockerfile s builds are pinned.
func (c *composeCheck) checkDockerfile(t *testing.T, s types.ServiceConfig) {
	file := s.Build.Dockerfile
	if !filepath.IsAbs(file) {
		file = filepath.Join(s.Build.Context, file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("%s: %v", s.Name, err)
		return
	}
	args := map[string]string{} // the global ARGs (before the first FROM), then the build's args
	stages := map[string]bool{} // the names of earlier stages
	seenFrom := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ARG":
			if !seenFrom {
				k, v, _ := strings.Cut(f[1], "=")
				args[k] = v
			}
		case "FROM":
			if !seenFrom {
				for k, v := range s.Build.Args {
					if v != nil {
						args[k] = *v
					}
				}
				seenFrom = true
			}
			f = slices.DeleteFunc(f[1:], func(w string) bool { return strings.HasPrefix(w, "--") })
			image := os.Expand(f[0], func(k string) string { return args[k] })
			if !stages[image] && image != "scratch" && !pinnedImage(image) && unversionedBases[image] == "" {
				t.Errorf("%s: FROM %s is not pinned to a version", file, image)
			}
			if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			}
		}
	}
}

// pinnedImage reports whether an image reference names a digest or a version tag.
func pinnedImage(image string) bool {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	if _, ok := ref.(reference.Digested); ok {
		return true
	}
	tagged, ok := ref.(reference.Tagged)
	return ok && versionTag.MatchString(tagged.Tag())
}

// hostPath returns the file of this machine that a path of s's container is: a secret's file, or
// one under a bind mount.
func (c *composeCheck) hostPath(s types.ServiceConfig, p string) (string, bool) {
	for _, sec := range s.Secrets {
		target := sec.Target
		if target == "" {
			target = "/run/secrets/" + sec.Source
		} else if !filepath.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		if p == target {
			return c.project.Secrets[sec.Source].File, c.project.Secrets[sec.Source].File != ""
		}
	}
	best, src := "", ""
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if (p == v.Target || strings.HasPrefix(p, strings.TrimSuffix(v.Target, "/")+"/")) && len(v.Target) > len(best) {
			best, src = v.Target, v.Source
		}
	}
	if best == "" {
		return "", false
	}
	return filepath.Join(src, strings.TrimPrefix(p, best)), true
}

// containerPathRE finds absolute paths in commands and variables.
var containerPathRE = regexp.MustCompile(`(?:^|[\s=@'":,])(/[A-Za-z0-9._/-]+)`)

func (c *composeCheck) checkFiles(t *testing.T) {
	exists := func(what, p string, dir bool) {
		t.Helper()
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			t.Errorf("%s: %v", what, err)
		case dir && !fi.IsDir():
			t.Errorf("%s: %s is not a directory", what, p)
		case !dir && fi.IsDir():
			t.Errorf("%s: %s is a directory, not a file", what, p)
		}
	}
	for _, s := range c.sortedServices() {
		if b := s.Build; b != nil {
			exists(s.Name+" build context", b.Context, true)
			file := b.Dockerfile
			if !filepath.IsAbs(file) {
				file = filepath.Join(b.Context, file)
			}
			exists(s.Name+" Dockerfile", file, false)
			for name, ctx := range b.AdditionalContexts {
				exists(s.Name+" build context "+name, ctx, true)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			// A missing source would be created as an empty directory, mounted where a file
			// was meant to be. A target with an extension is a file.
			exists(fmt.Sprintf("%s mounts %s", s.Name, v.Target), v.Source, filepath.Ext(v.Target) == "")
			if !v.ReadOnly {
				t.Errorf("%s mounts %s read-write: the repository's files are read-only to the containers", s.Name, v.Source)
			}
		}
		for _, sec := range s.Secrets {
			f, ok := c.project.Secrets[sec.Source]
			if !ok || f.File == "" {
				t.Errorf("%s: secret %s is not a file of the top-level secrets", s.Name, sec.Source)
				continue
			}
			exists(s.Name+" secret "+sec.Source, f.File, false)
		}
		// Every path of a command or variable that lies in a mount or a secret names a file that is
		// there: a renamed file fails here rather than in the container.
		var texts []string
		texts = append(texts, s.Command...)
		texts = append(texts, s.Entrypoint...)
		if s.HealthCheck != nil {
			texts = append(texts, s.HealthCheck.Test...)
		}
		for _, v := range s.Environment {
			if v != nil {
				texts = append(texts, *v)
			}
		}
		for _, text := range texts {
			for _, m := range containerPathRE.FindAllStringSubmatch(text, -1) {
				if hp, ok := c.hostPath(s, m[1]); ok {
					if _, err := os.Stat(hp); err != nil {
						t.Errorf("%s names %s: %v", s.Name, m[1], err)
					}
				}
			}
		}
	}
}

// dependencies returns every service s waits for, directly or not.
func (c *composeCheck) dependencies(s string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		for d := range c.project.Services[n].DependsOn {
			if !seen[d] {
				seen[d] = true
				visit(d)
			}
		}
	}
	visit(s)
	return seen
}

func (c *composeCheck) checkStartOrder(t *testing.T) {
	for _, s := range c.sortedServices() {
		switch {
		case s.Restart == "":
			t.Errorf("%s: no restart policy: say unless-stopped for a service, \"no\" for a one-shot", s.Name)
		case longRunning(s) && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2):
			t.Errorf("%s runs for good without a health check", s.Name)
		}
		for d, dep := range s.DependsOn {
			target, ok := c.project.Services[d]
			if !ok {
				t.Errorf("%s depends on %s, which is no service", s.Name, d)
				continue
			}
			want := types.ServiceConditionHealthy
			if !longRunning(target) {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if dep.Condition != want {
				t.Errorf("%s waits for %s to be %s, want %s", s.Name, d, dep.Condition, want)
			}
		}
		if c.dependencies(s.Name)[s.Name] {
			t.Errorf("%s depends on itself", s.Name)
		}
	}
	// Every role waits for a service that runs codebank setup: it needs the topics.
	var setups []string
	for _, name := range slices.Sorted(maps.Keys(c.roles)) {
		r := c.roles[name]
		if len(r.command) > 0 && r.command[0] == "setup" {
			setups = append(setups, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.roles)) {
		r := c.roles[name]
		if len(r.command) == 0 || r.command[0] == "setup" || !slices.Contains(servingCommands, r.command[0]) {
			continue
		}
		deps := c.dependencies(name)
		if !slices.ContainsFunc(setups, func(s string) bool { return deps[s] }) {
			t.Errorf("%s does not wait for codebank setup (%v): the roles need the topics it creates", name, setups)
		}
	}
}

func (c *composeCheck) checkCodebankServices(t *testing.T) {
	ran := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(c.roles)) {
		r, s := c.roles[name], c.project.Services[name]
		if len(r.command) == 0 {
			continue
		}
		if r.command[0] == "help" {
			c.checkToolService(t, r)
			continue
		}
		if !slices.Contains(servingCommands, r.command[0]) {
			t.Errorf("%s runs codebank %s, which is not a role", name, r.command[0])
			continue
		}
		ran[r.command[0]] = true
		known := map[string]bool{}
		for _, f := range r.flags {
			known[f.env] = true
		}
		for k := range r.env {
			if !known[k] {
				t.Errorf("%s sets %s, which codebank %s does not read", name, k, r.command[0])
			}
		}
		// A secret given as a file is one of the service's secrets (checkFiles: which exists).
		for k, v := range r.env {
			if strings.HasSuffix(k, "_FILE") && strings.HasPrefix(v, "/run/secrets/") {
				if _, ok := c.hostPath(s, v); !ok {
					t.Errorf("%s: %s=%s is no secret of the service", name, k, v)
				}
			}
		}

		// Ports: published and exposed ones are those the role listens on; the operations port
		// is exposed (Prometheus scrapes it) and the health check asks it.
		ports := r.listenPorts()
		listening := map[string]bool{}
		for _, p := range ports {
			listening[p] = true
		}
		for _, p := range s.Ports {
			if !listening[fmt.Sprint(p.Target)] {
				t.Errorf("%s publishes %d, where codebank %s does not listen (%v)", name, p.Target, r.command[0], ports)
			}
		}
		for _, p := range s.Expose {
			if !listening[p] {
				t.Errorf("%s exposes %s, where codebank %s does not listen (%v)", name, p, r.command[0], ports)
			}
		}
		if ops := ports["ops-addr"]; ops != "" {
			if !slices.Contains(s.Expose, ops) {
				t.Errorf("%s: operations port %s not exposed", name, ops)
			}
			c.checkProbe(t, s, r, ops)
		} else if longRunning(s) {
			t.Errorf("%s runs for good without an operations port to check and scrape", name)
		}

		c.startRole(t, s, r)
	}
	for _, role := range []string{"setup", "ingress", "authorizer", "statements", "web"} {
		if !ran[role] {
			t.Errorf("no service runs codebank %s", role)
		}
	}
}

// checkProbe checks that s's health check is `codebank probe` on the role's operations port.
func (c *composeCheck) checkProbe(t *testing.T, s types.ServiceConfig, r *codebankService, opsPort string) {
	entry := dockerfileEntrypoint(t, filepath.Join(c.root, "Dockerfile"))
	test := s.HealthCheck.Test
	if len(test) < 3 || test[0] != "CMD" || test[1] != entry || test[2] != "probe" {
		t.Errorf("%s: health check %v, want [CMD %s probe]", s.Name, test, entry)
		return
	}
	probe := &codebankService{name: s.Name, command: test[2:], env: r.env, flags: commandFlags(t, "probe")}
	for i := 3; i < len(test); i++ {
		name, _, _ := strings.Cut(strings.TrimLeft(test[i], "-"), "=")
		if _, ok := probe.flags[name]; strings.HasPrefix(test[i], "-") && !ok {
			t.Errorf("%s: health check gives codebank probe the unknown flag %s", s.Name, test[i])
		}
	}
	if ports := probe.listenPorts(); ports["ops-addr"] != opsPort {
		t.Errorf("%s: health check probes port %s, the role's operations port is %s", s.Name, ports["ops-addr"], opsPort)
	}
}

// dockerfileEntrypoint returns the program of a Dockerfile's exec-form ENTRYPOINT.
func dockerfileEntrypoint(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no ENTRYPOINT [...]", file)
	}
	return string(m[1])
}

// checkToolService checks a service that runs the CLI on demand: each variable it sets is a flag
// of one of the tool commands.
func (c *composeCheck) checkToolService(t *testing.T, r *codebankService) {
	known := map[string]bool{}
	for _, f := range r.flags {
		known[f.env] = true
	}
	for k := range r.env {
		if !known[k] {
			t.Errorf("%s sets %s, which none of the commands %v reads", r.name, k, toolCommands)
		}
	}
}

// startRole runs r's command in this process with exactly its service's CODEBANK_* variables and
// command line (files mapped to the ones mounted, storage in a temporary directory, Kafka at an
// address where nothing listens): a flag or variable the role does not know, a secret it cannot
// read or refuses, stops it at once; a role configured well goes on to wait for Kafka.
func (c *composeCheck) startRole(t *testing.T, s types.ServiceConfig, r *codebankService) {
	t.Helper()
	for _, f := range r.flags {
		t.Setenv(f.env, "")
		os.Unsetenv(f.env)
	}
	mapPath := func(v string) string {
		if hp, ok := c.hostPath(s, v); ok && strings.HasPrefix(v, "/") {
			return hp
		}
		return v
	}
	for k, v := range r.env {
		t.Setenv(k, mapPath(v))
	}
	args := []string{r.command[0]}
	for _, a := range r.command[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			args = append(args, k+"="+mapPath(v))
		} else {
			args = append(args, mapPath(a))
		}
	}
	// Flags given last win: nothing here is reached or listened on.
	overrides := map[string]string{"brokers": "127.0.0.1:1", "storage-dir": t.TempDir(), "log-level": "error",
		"grpc-addr": "127.0.0.1:0", "http-addr": "127.0.0.1:0", "ops-addr": "127.0.0.1:0"}
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		if _, ok := r.flags[k]; ok {
			args = append(args, "--"+k+"="+overrides[k])
		}
	}
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := program.Run(ctx, args, io.Discard, &stderr)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "kafka at")) {
		log, _, _ := strings.Cut(stderr.String(), "\nUsage:") // not the whole usage
		t.Errorf("%s: codebank %s with its service's command and variables = %v, want it waiting for Kafka; %s", s.Name, strings.Join(r.command, " "), err, log)
	}
}

// serviceAddrRE finds "name:port" in a text; name is checked against the services.
var serviceAddrRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9.-])([a-z][a-z0-9-]*):([0-9]{2,5})\b`)

// listening returns the ports a service listens on: a role's from its flags, any other's from
// its expose and ports.
func (c *composeCheck) listening(name string) map[string]bool {
	out := map[string]bool{}
	if r, ok := c.roles[name]; ok && r.flags != nil {
		for _, p := range r.listenPorts() {
			out[p] = true
		}
		return out
	}
	s := c.project.Services[name]
	for _, p := range s.Expose {
		out[p] = true
	}
	for _, p := range s.Ports {
		out[fmt.Sprint(p.Target)] = true
	}
	return out
}

// checkAddresses checks every "service:port" of a command, variable or mounted file: the service
// exists and listens there and, when the service needs it to start (command and variables), it
// waits for it.
func (c *composeCheck) checkAddresses(t *testing.T) {
	check := func(from, where, text string, needed bool) {
		for _, m := range serviceAddrRE.FindAllStringSubmatch(text, -1) {
			to, port := m[1], m[2]
			if _, ok := c.project.Services[to]; !ok || to == from {
				continue
			}
			if !c.listening(to)[port] {
				t.Errorf("%s (%s) reaches %s:%s, but %s listens on %v", from, where, to, port, to, slices.Sorted(maps.Keys(c.listening(to))))
			}
			if needed && !c.dependencies(from)[to] {
				t.Errorf("%s (%s) reaches %s:%s without waiting for %s (depends_on)", from, where, to, port, to)
			}
		}
	}
	for _, s := range c.sortedServices() {
		for k, v := range s.Environment {
			if v != nil {
				check(s.Name, k, *v, true)
			}
		}
		check(s.Name, "command", strings.Join(s.Command, " "), true)
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			files := []string{v.Source}
			if fi, err := os.Stat(v.Source); err == nil && fi.IsDir() {
				files, _ = filepath.Glob(filepath.Join(v.Source, "*", "*.y*ml"))
				more, _ := filepath.Glob(filepath.Join(v.Source, "*.y*ml"))
				files = append(files, more...)
			}
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil && len(b) < 1<<20 {
					check(s.Name, filepath.Base(f), string(b), false)
				}
			}
		}
	}
}

// prometheusConfig is the part of prometheus.yml these checks read.
type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

// flagValue returns the value of --name=V (or --name V) in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// checkPrometheus: Prometheus reads its configuration and rule files from mounted files, and
// scrapes every role's operations port at /metrics.
func (c *composeCheck) checkPrometheus(t *testing.T) {
	s, ok := c.project.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	configPath := flagValue(s.Command, "config.file")
	hp, ok := c.hostPath(s, configPath)
	if !ok {
		t.Fatalf("prometheus: --config.file=%s is not mounted", configPath)
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		t.Fatal(err)
	}
	var cfg prometheusConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", hp, err)
	}
	if len(cfg.RuleFiles) == 0 {
		t.Errorf("%s loads no rule files", hp)
	}
	for _, f := range cfg.RuleFiles {
		if rf, ok := c.hostPath(s, f); !ok {
			t.Errorf("%s: rule file %s is not mounted", hp, f)
		} else if _, err := os.Stat(rf); err != nil {
			t.Errorf("%s: rule file %s: %v", hp, f, err)
		}
	}
	scraped := map[string]string{} // target → job
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = sc.JobName
			}
		}
		// Compose's DNS answers a service's name with the address of each of its containers.
		for _, d := range sc.DNSSDConfigs {
			for _, name := range d.Names {
				if d.Type == "A" || d.Type == "" {
					scraped[fmt.Sprintf("%s:%d", name, d.Port)] = sc.JobName
				}
			}
		}
	}
	for _, target := range slices.Sorted(maps.Keys(scraped)) {
		host, port, _ := strings.Cut(target, ":")
		if _, ok := c.project.Services[host]; !ok && host != "localhost" {
			t.Errorf("%s: target %s is no service", hp, target)
		} else if ok && !c.listening(host)[port] {
			t.Errorf("%s: target %s: %s does not listen on %s", hp, target, host, port)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.roles)) {
		r := c.roles[name]
		if !longRunning(c.project.Services[name]) {
			continue
		}
		ops := r.listenPorts()["ops-addr"]
		if ops == "" {
			continue
		}
		// monitoring/prometheus/rules.yaml and the dashboards select Code Bank's processes by a
		// job holding "codebank".
		switch job, ok := scraped[name+":"+ops]; {
		case !ok:
			t.Errorf("%s: Prometheus does not scrape %s:%s", hp, name, ops)
		case !strings.Contains(job, "codebank"):
			t.Errorf("%s: %s:%s is scraped by job %q, which the rules and dashboards do not select (no \"codebank\" in it)", hp, name, ops, job)
		}
	}
}

// grafanaDatasources is the part of a datasource provisioning file these checks read.
type grafanaDatasources struct {
	Datasources []struct {
		Name     string `yaml:"name"`
		UID      string `yaml:"uid"`
		Type     string `yaml:"type"`
		JSONData struct {
			Index string `yaml:"index"`
		} `yaml:"jsonData"`
	} `yaml:"datasources"`
}

// grafanaProviders is the part of a dashboard provisioning file these checks read.
type grafanaProviders struct {
	Providers []struct {
		Name    string `yaml:"name"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// checkGrafana: the provisioned dashboard directories are mounted; every datasource a dashboard
// names is provisioned, or is a datasource variable of the dashboard with a datasource of its
// type provisioned; and a search datasource reads the index the sink writes.
func (c *composeCheck) checkGrafana(t *testing.T) {
	s, ok := c.project.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	prov, ok := c.hostPath(s, "/etc/grafana/provisioning")
	if !ok {
		t.Fatal("grafana: /etc/grafana/provisioning is not mounted")
	}
	known := provisioned{uids: map[string]bool{}, names: map[string]bool{}, types: map[string]bool{}}
	files, _ := filepath.Glob(filepath.Join(prov, "datasources", "*.y*ml"))
	for _, f := range files {
		var ds grafanaDatasources
		readYAML(t, f, &ds)
		for _, d := range ds.Datasources {
			known.uids[d.UID], known.names[d.Name], known.types[d.Type] = true, true, true
			if d.Type == "elasticsearch" && d.JSONData.Index != analytics.DefaultIndex {
				t.Errorf("%s: datasource %s reads index %q, want the alias of the sink's monthly indices, %s", f, d.Name, d.JSONData.Index, analytics.DefaultIndex)
			}
		}
	}
	if len(known.uids) == 0 {
		t.Errorf("%s provisions no datasource", prov)
	}
	files, _ = filepath.Glob(filepath.Join(prov, "dashboards", "*.y*ml"))
	dashboards := 0
	for _, f := range files {
		var ps grafanaProviders
		readYAML(t, f, &ps)
		for _, p := range ps.Providers {
			dir, ok := c.hostPath(s, p.Options.Path)
			if !ok {
				t.Errorf("%s: provider %s reads %s, which is not mounted", f, p.Name, p.Options.Path)
				continue
			}
			jsons, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			for _, j := range jsons {
				dashboards++
				checkDashboardDatasources(t, j, known)
			}
		}
	}
	if dashboards == 0 {
		t.Errorf("Grafana is provisioned with no dashboard")
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// builtinDatasources are the uids (and names) of Grafana's own datasources.
var builtinDatasources = []string{"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}

// provisioned are the datasources provisioned: their uids, names and types.
type provisioned struct{ uids, names, types map[string]bool }

// checkDashboardDatasources checks every "datasource" of a dashboard's JSON.
func checkDashboardDatasources(t *testing.T, file string, known provisioned) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Errorf("%s: %v", file, err)
		return
	}
	variables := map[string]bool{} // the dashboard's datasource variables
	if tmpl, ok := dash["templating"].(map[string]any); ok {
		list, _ := tmpl["list"].([]any)
		for _, v := range list {
			if v, ok := v.(map[string]any); ok && v["type"] == "datasource" {
				variables[fmt.Sprint(v["name"])] = true
				if typ := fmt.Sprint(v["query"]); !known.types[typ] {
					t.Errorf("%s: variable %s picks a datasource of type %s, and none is provisioned", file, v["name"], typ)
				}
			}
		}
	}
	ok := func(ref string) bool {
		if name, isVar := strings.CutPrefix(ref, "$"); isVar {
			return variables[strings.Trim(name, "{}")]
		}
		return slices.Contains(builtinDatasources, ref)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "datasource" {
					switch ds := x.(type) {
					case string:
						if !known.names[ds] && !known.uids[ds] && !ok(ds) {
							t.Errorf("%s: datasource %q is not provisioned", file, ds)
						}
					case map[string]any:
						if uid, has := ds["uid"].(string); has && !known.uids[uid] && !ok(uid) {
							t.Errorf("%s: datasource uid %q is not provisioned (%v)", file, uid, slices.Sorted(maps.Keys(known.uids)))
						}
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
}

// checkConnect: the Connect worker runs the broker's Kafka version, and its plugin.path holds the
// directory the sink's jar is copied into.
func (c *composeCheck) checkConnect(t *testing.T) {
	s, ok := c.project.Services["connect"]
	if !ok || s.Build == nil {
		t.Fatal("no connect service built here")
	}
	b, err := os.ReadFile(filepath.Join(s.Build.Context, s.Build.Dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	broker := c.project.Services["kafka"].Image
	if !regexp.MustCompile(`(?m)^FROM ` + regexp.QuoteMeta(broker) + `( |$)`).Match(b) {
		t.Errorf("the Connect image is not built FROM %s, the broker's image", broker)
	}
	props := ""
	for _, a := range s.Command {
		if strings.HasSuffix(a, ".properties") {
			props = a
		}
	}
	hp, ok := c.hostPath(s, props)
	if !ok {
		t.Fatalf("connect: the worker's properties %q are not mounted", props)
	}
	pb, err := os.ReadFile(hp)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^plugin\.path=(.+)$`).FindSubmatch(pb)
	if m == nil {
		t.Fatalf("%s sets no plugin.path", hp)
	}
	pluginPath := strings.TrimSuffix(string(m[1]), "/")
	jar := regexp.MustCompile(`(?m)^COPY --from=\S+ \S+\.jar (\S+)$`).FindSubmatch(b)
	if jar == nil || filepath.Dir(filepath.Dir(string(jar[1]))) != pluginPath {
		t.Errorf("the Dockerfile does not copy the sink's jar into a directory of plugin.path %s", pluginPath)
	}
	if !bytes.Contains(b, []byte("connect.OpenSearchSinkConnector > /build/classes/META-INF/services/org.apache.kafka.connect.sink.SinkConnector")) {
		t.Errorf("the Dockerfile does not declare the sink in META-INF/services (plugin.discovery=service_load)")
	}
}

// apiCaller is an API key a service calls the bank with, and the role it needs.
type apiCaller struct {
	what, key string
	role      apikey.Role
}

// checkDemoSecrets: every API key a service calls the bank with is admitted, with the role it
// needs, by the keys file of the services it calls.
func (c *composeCheck) checkDemoSecrets(t *testing.T) {
	// read returns the content of the file a service's flag names, in its container.
	read := func(service, flag string) string {
		t.Helper()
		r := c.roles[service]
		v, _ := r.value(flag)
		hp, ok := c.hostPath(c.project.Services[service], v)
		if !ok {
			t.Fatalf("%s: --%s=%s is not mounted", service, flag, v)
		}
		b, err := os.ReadFile(hp)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	byCommand := map[string]string{} // a service of each command
	for _, name := range slices.Sorted(maps.Keys(c.roles)) {
		r := c.roles[name]
		if len(r.command) > 0 {
			byCommand[r.command[0]] = name
		}
	}
	for _, callee := range []string{"ingress", "statements"} {
		keys, err := apikey.Parse(strings.NewReader(read(byCommand[callee], "api-keys-file")))
		if err != nil {
			t.Fatalf("%s: the keys file: %v", byCommand[callee], err)
		}
		web := byCommand["web"]
		callers := []apiCaller{
			{web + " --merchant-key-file", read(web, "merchant-key-file"), apikey.Merchant},
			{web + " --pages-key-file", read(web, "pages-key-file"), apikey.Pages},
		}
		if cli, ok := byCommand["help"]; ok { // the CLI's credentials file
			creds := map[string]string{}
			for _, line := range strings.Split(read(cli, "credentials"), "\n") {
				if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
					creds[k] = v
				}
			}
			callers = append(callers,
				apiCaller{cli + " CODEBANK_MERCHANT_KEY", creds["CODEBANK_MERCHANT_KEY"], apikey.Merchant},
				apiCaller{cli + " CODEBANK_ADMIN_KEY", creds["CODEBANK_ADMIN_KEY"], apikey.Admin})
		}
		for _, k := range callers {
			if p, err := keys.Authenticate(k.key); err != nil || p.Role != k.role {
				t.Errorf("%s: %s's keys file authenticates it as %q (%v), want role %s", k.what, byCommand[callee], p.Role, err, k.role)
			}
		}
	}
}
