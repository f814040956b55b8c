package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/settings"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// yamlDocs reads every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// get walks a path of map keys and list indexes through decoded YAML; it
// returns nil where the path leads nowhere.
func yamlGet(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func yamlList(v any) []any {
	l, _ := v.([]any)
	return l
}

func yamlStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// invocation is one fetchctl command line found in a config file.
type invocation struct {
	where string
	sub   string            // run, summarize, ...
	flags map[string]string // long flag name → value as written ("true" for a bare bool)
	args  []string          // positional arguments
}

// placeholders are the per-shard values that the engine fills in before
// fetchctl runs, each with a value it may take.
var placeholders = map[string]string{
	"$(JOB_COMPLETION_INDEX)": "0",
	"@matrix.shard@":          "0",
}

func fillPlaceholders(s string) string {
	for p, v := range placeholders {
		s = strings.ReplaceAll(s, p, v)
	}
	return s
}

// parseInvocation checks a fetchctl command line (without the program
// name) against the real command tree: the subcommand exists, every flag
// exists on it, and the flags parse once the placeholders are filled in.
func parseInvocation(where string, words []string) (invocation, error) {
	inv := invocation{where: where, flags: map[string]string{}}
	d := &deps{io: &IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, getenv: func(string) string { return "" }}
	root := newRootCmd(d)
	cmd, rest, err := root.Find(words)
	if err != nil || cmd == root {
		return inv, fmt.Errorf("%s: fetchctl %s: no such command", where, strings.Join(words, " "))
	}
	inv.sub = cmd.Name()
	lookup := func(name string, short bool) *pflag.Flag {
		for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.InheritedFlags()} {
			if short {
				if f := fs.ShorthandLookup(name); f != nil {
					return f
				}
			} else if f := fs.Lookup(name); f != nil {
				return f
			}
		}
		return nil
	}
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if w == "-" || !strings.HasPrefix(w, "-") {
			inv.args = append(inv.args, w)
			continue
		}
		var f *pflag.Flag
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if strings.HasPrefix(w, "--") {
			f = lookup(name, false)
		} else {
			// -o FILE, -oFILE, -qv: the first letter names the flag; a
			// bool may be followed by more bool letters.
			for j, c := range name {
				f = lookup(string(c), true)
				if f == nil || f.Value.Type() != "bool" {
					if rem := name[j+1:]; f != nil && rem != "" {
						value, hasValue = rem, true
					}
					break
				}
				inv.flags[f.Name] = "true"
			}
		}
		if f == nil {
			return inv, fmt.Errorf("%s: fetchctl %s has no flag %s", where, inv.sub, w)
		}
		if !hasValue {
			if f.Value.Type() == "bool" {
				value = "true"
			} else if i+1 < len(rest) {
				i++
				value = rest[i]
			} else {
				return inv, fmt.Errorf("%s: %s needs a value", where, w)
			}
		}
		inv.flags[f.Name] = value
	}
	filled := make([]string, len(rest))
	for i, w := range rest {
		filled[i] = fillPlaceholders(w)
	}
	if err := cmd.ParseFlags(filled); err != nil {
		return inv, fmt.Errorf("%s: fetchctl %s: %v", where, inv.sub, err)
	}
	return inv, nil
}

var ghExpr = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// shellCommands finds the fetchctl command lines of a CI run script: it
// joins continued lines, splits commands at newlines, ; && || and |, and
// splits words at blanks outside quotes. A GitHub expression ${{ x }}
// becomes the single word part @x@.
func shellCommands(script string) [][]string {
	script = ghExpr.ReplaceAllString(script, "@$1@")
	script = strings.ReplaceAll(script, "\\\n", " ")
	var cmds [][]string
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 && filepath.Base(words[0]) == "fetchctl" {
			cmds = append(cmds, words[1:])
		}
		words = nil
	}
	for _, c := range script {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				word.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\n' || c == ';' || c == '&' || c == '|':
			endCmd()
		case c == ' ' || c == '\t':
			endWord()
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// checkSettingEnv checks that every FETCHCTL_* variable names a setting.
func checkSettingEnv(t *testing.T, where string, names []string) {
	t.Helper()
	known := map[string]bool{}
	for _, name := range settings.EnvNames() {
		known[name] = true
	}
	for _, n := range names {
		if strings.HasPrefix(n, "FETCHCTL_") && !known[n] {
			t.Errorf("%s: environment variable %s is no fetchctl setting", where, n)
		}
	}
}

// shardCount reads N from a --shard value "<index placeholder>/N".
func shardCount(t *testing.T, inv invocation, index string) int {
	t.Helper()
	k, n, ok := strings.Cut(inv.flags["shard"], "/")
	count, err := strconv.Atoi(n)
	if !ok || k != index || err != nil || count < 1 {
		t.Fatalf("%s: --shard %q, want %s/N", inv.where, inv.flags["shard"], index)
	}
	return count
}

// wantShardFiles checks that a summarize invocation names the output of
// every shard, each once, and nothing else: a glob would quietly summarize
// fewer shards when one is missing.
func wantShardFiles(t *testing.T, sum invocation, output, index string, n int) {
	t.Helper()
	if !strings.Contains(output, index) {
		t.Fatalf("the shards all write to %q: want the shard index in the file name", output)
	}
	var want []string
	for k := 0; k < n; k++ {
		want = append(want, strings.ReplaceAll(output, index, strconv.Itoa(k)))
	}
	got := slices.Clone(sum.args)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: summarize reads %q, want the %d shard files %q", sum.where, sum.args, n, want)
	}
	if _, ok := sum.flags["min-success"]; !ok {
		t.Errorf("%s: summarize without --min-success gates nothing", sum.where)
	}
}

// decodeManifests decodes every document of a manifest file into the
// Kubernetes API type its apiVersion and kind name, as the API server does
// with strict field validation: an unknown or duplicated field, a value of
// the wrong type or a kind that does not exist is an error.
func decodeManifests(data []byte) ([]runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		// A document of comments only holds no object.
		if j, err := kyaml.ToJSON(doc); err == nil && string(bytes.TrimSpace(j)) == "null" {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		objs = append(objs, obj)
	}
}

func TestKubernetesManifestsStrict(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../configs/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under configs/kubernetes: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeManifests(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("no object decoded")
			}
		})
	}
}

// TestDecodeManifests pins what the strict decoding rejects, so that the
// check of the shipped manifests cannot pass by accepting everything.
func TestDecodeManifests(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../configs/kubernetes/fetch-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := string(data)
	tests := []struct {
		name     string
		old, new string
		wantErr  string
	}{
		{name: "as shipped"},
		{name: "unknown field", old: "      restartPolicy: Never\n", new: "      restartPolicy: Never\n      restartPolicyy: Never\n",
			wantErr: `unknown field "spec.template.spec.restartPolicyy"`},
		{name: "field at the wrong level", old: "  parallelism: 4\n", new: "  parallelism: 4\n  runAsUser: 65532\n",
			wantErr: `unknown field "spec.runAsUser"`},
		{name: "duplicate field", old: "  parallelism: 4\n", new: "  parallelism: 4\n  parallelism: 2\n",
			wantErr: `"parallelism" already set`},
		{name: "wrong type", old: "  completions: 4\n", new: "  completions: four\n",
			wantErr: "cannot unmarshal"},
		{name: "no such kind", old: "kind: Job\n", new: "kind: Jobs\n",
			wantErr: `no kind "Jobs" is registered`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := good
			if tt.old != "" {
				if !strings.Contains(good, tt.old) {
					t.Fatalf("fetch-job.yaml has no %q to change", tt.old)
				}
				text = strings.Replace(good, tt.old, tt.new, 1)
			}
			_, err := decodeManifests([]byte(text))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKubernetesConfigs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../configs/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under configs/kubernetes: %v", err)
	}
	type jobInfo struct {
		name    string
		indexed bool
		count   int
		claims  []string
		invs    []invocation
	}
	// A container without a command runs the image's entrypoint.
	spec := loadImageSpec(t)
	checkDockerfile(&spec)
	var jobs []jobInfo
	for _, file := range files {
		for _, doc := range yamlDocs(t, file) {
			if yamlStr(doc["kind"]) != "Job" {
				continue
			}
			job := jobInfo{
				name:    yamlStr(yamlGet(doc, "metadata", "name")),
				indexed: yamlStr(yamlGet(doc, "spec", "completionMode")) == "Indexed",
			}
			job.count, _ = yamlGet(doc, "spec", "completions").(int)
			pod := yamlGet(doc, "spec", "template", "spec")
			for _, v := range yamlList(yamlGet(pod, "volumes")) {
				if c := yamlStr(yamlGet(v, "persistentVolumeClaim", "claimName")); c != "" {
					job.claims = append(job.claims, c)
				}
			}
			containers := append(yamlList(yamlGet(pod, "initContainers")), yamlList(yamlGet(pod, "containers"))...)
			for _, c := range containers {
				var words []string
				command := yamlList(yamlGet(c, "command"))
				if command == nil {
					for _, w := range spec.entry {
						command = append(command, w)
					}
				}
				for _, w := range append(command, yamlList(yamlGet(c, "args"))...) {
					words = append(words, yamlStr(w))
				}
				var env []string
				for _, e := range yamlList(yamlGet(c, "env")) {
					env = append(env, yamlStr(yamlGet(e, "name")))
				}
				where := fmt.Sprintf("%s: job %s container %s", filepath.Base(file), job.name, yamlStr(yamlGet(c, "name")))
				checkSettingEnv(t, where, env)
				if len(words) == 0 || filepath.Base(words[0]) != "fetchctl" {
					continue
				}
				inv, err := parseInvocation(where, words[1:])
				if err != nil {
					t.Error(err)
					continue
				}
				job.invs = append(job.invs, inv)
			}
			jobs = append(jobs, job)
		}
	}

	const index = "$(JOB_COMPLETION_INDEX)"
	var fetch, summarize *invocation
	var fetchJob, sumJob jobInfo
	for _, j := range jobs {
		for i := range j.invs {
			switch inv := &j.invs[i]; inv.sub {
			case "run":
				fetch, fetchJob = inv, j
			case "summarize":
				summarize, sumJob = inv, j
			}
		}
	}
	if fetch == nil || summarize == nil {
		t.Fatalf("want a Job running fetchctl run and one running fetchctl summarize; found %+v", jobs)
	}
	if !fetchJob.indexed {
		t.Errorf("job %s: completionMode is not Indexed", fetchJob.name)
	}
	n := shardCount(t, *fetch, index)
	if fetchJob.count != n {
		t.Errorf("job %s: %d completions for --shard %s", fetchJob.name, fetchJob.count, fetch.flags["shard"])
	}
	wantShardFiles(t, *summarize, fetch.flags["output"], index, n)
	if len(fetchJob.claims) == 0 || !slices.Equal(fetchJob.claims, sumJob.claims) {
		t.Errorf("the fetch job mounts claims %q and the summarize job %q: want the same volume", fetchJob.claims, sumJob.claims)
	}
}

func TestCIWorkflow(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../configs/ci/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflow under configs/ci: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			docs := yamlDocs(t, file)
			if len(docs) != 1 {
				t.Fatalf("%d YAML documents, want 1", len(docs))
			}
			wf := docs[0]
			envNames := func(v any) []string {
				m, _ := v.(map[string]any)
				var names []string
				for k := range m {
					names = append(names, k)
				}
				return names
			}
			checkSettingEnv(t, "workflow env", envNames(wf["env"]))

			type jobInfo struct {
				name      string
				needs     []string
				shards    []any
				invs      []invocation
				uploads   []map[string]any
				downloads int
			}
			jobsMap, _ := wf["jobs"].(map[string]any)
			var jobs []jobInfo
			for name, j := range jobsMap {
				job := jobInfo{name: name, shards: yamlList(yamlGet(j, "strategy", "matrix", "shard"))}
				switch nd := yamlGet(j, "needs").(type) {
				case string:
					job.needs = []string{nd}
				case []any:
					for _, x := range nd {
						job.needs = append(job.needs, yamlStr(x))
					}
				}
				checkSettingEnv(t, "job "+name, envNames(yamlGet(j, "env")))
				for i, st := range yamlList(yamlGet(j, "steps")) {
					where := fmt.Sprintf("job %s step %d", name, i+1)
					checkSettingEnv(t, where, envNames(yamlGet(st, "env")))
					uses := yamlStr(yamlGet(st, "uses"))
					switch {
					case strings.HasPrefix(uses, "actions/upload-artifact@"):
						w, _ := yamlGet(st, "with").(map[string]any)
						job.uploads = append(job.uploads, w)
					case strings.HasPrefix(uses, "actions/download-artifact@"):
						job.downloads++
					}
					for _, words := range shellCommands(yamlStr(yamlGet(st, "run"))) {
						inv, err := parseInvocation(where, words)
						if err != nil {
							t.Error(err)
							continue
						}
						job.invs = append(job.invs, inv)
					}
				}
				jobs = append(jobs, job)
			}

			const index = "@matrix.shard@"
			var fetch, summarize *invocation
			var shardJob, sumJob jobInfo
			for _, j := range jobs {
				for i := range j.invs {
					switch inv := &j.invs[i]; inv.sub {
					case "run":
						fetch, shardJob = inv, j
					case "summarize":
						summarize, sumJob = inv, j
					}
				}
			}
			if fetch == nil || summarize == nil {
				t.Fatalf("want a job running fetchctl run and one running fetchctl summarize")
			}
			n := shardCount(t, *fetch, index)
			if len(shardJob.shards) != n {
				t.Errorf("job %s: matrix of %d shards for --shard %s", shardJob.name, len(shardJob.shards), fetch.flags["shard"])
			}
			for k, v := range shardJob.shards {
				if yamlStr(v) != strconv.Itoa(k) {
					t.Errorf("job %s: matrix shard %d is %v, want %d", shardJob.name, k, v, k)
				}
			}
			output := fetch.flags["output"]
			wantShardFiles(t, *summarize, output, index, n)

			// Each shard keeps its records as an artifact of its own, and
			// the summarize job waits for them and downloads them.
			kept := false
			for _, up := range shardJob.uploads {
				path := strings.TrimSuffix(yamlStr(up["path"]), "/")
				if strings.Contains(yamlStr(up["name"]), "${{ matrix.shard }}") && path != "" && strings.HasPrefix(output, path) {
					kept = true
				}
			}
			if !kept {
				t.Errorf("job %s: no upload-artifact step, named by shard, keeps %s", shardJob.name, output)
			}
			if !slices.Contains(sumJob.needs, shardJob.name) {
				t.Errorf("job %s needs %q, want it to wait for %s", sumJob.name, sumJob.needs, shardJob.name)
			}
			if sumJob.downloads == 0 {
				t.Errorf("job %s downloads no artifact", sumJob.name)
			}
		})
	}
}

// TestParseInvocation pins what the config checks accept and reject, so
// that they cannot pass by accepting everything.
func TestParseInvocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		words   []string
		wantErr string
		want    map[string]string
	}{
		{name: "long flags with and without =", words: []string{"run", "--shard=@matrix.shard@/4", "--rate", "5", "urls.txt"},
			want: map[string]string{"shard": "@matrix.shard@/4", "rate": "5"}},
		{name: "short flags", words: []string{"run", "-qo", "out.ndjson", "-c", "10", "-"},
			want: map[string]string{"quiet": "true", "output": "out.ndjson", "limit": "10"}},
		{name: "inherited flag", words: []string{"summarize", "--config", "x.yaml", "a.ndjson"},
			want: map[string]string{"config": "x.yaml"}},
		{name: "unknown flag", words: []string{"run", "--shards", "0/4"}, wantErr: "has no flag --shards"},
		{name: "flag of another command", words: []string{"summarize", "--shard", "0/4", "a"}, wantErr: "has no flag --shard"},
		{name: "bad value", words: []string{"run", "--adaptive=maybe"}, wantErr: "invalid argument"},
		{name: "unknown command", words: []string{"merge", "a"}, wantErr: "no such command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv, err := parseInvocation("test", tt.words)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if inv.flags[k] != v {
					t.Errorf("flag %s = %q, want %q", k, inv.flags[k], v)
				}
			}
		})
	}
}

func TestShellCommands(t *testing.T) {
	t.Parallel()
	script := "mkdir -p out\n" +
		"fetchctl run urls.txt \\\n  --shard ${{ matrix.shard }}/4 -o 'out/a b.ndjson' && echo done\n" +
		"bin/fetchctl summarize x; fetchctl version | cat\n"
	got := fmt.Sprint(shellCommands(script))
	want := fmt.Sprint([][]string{
		{"run", "urls.txt", "--shard", "@matrix.shard@/4", "-o", "out/a b.ndjson"},
		{"summarize", "x"},
		{"version"},
	})
	if got != want {
		t.Errorf("shellCommands = %s\nwant %s", got, want)
	}
}
