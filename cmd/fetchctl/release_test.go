package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// dockerStage is one FROM stage of a Dockerfile, as the image checks read it.
type dockerStage struct {
	base       string     // the FROM image
	name       string     // its AS name
	user       string     // the last USER
	entrypoint []string   // the last ENTRYPOINT, exec form
	shellEntry bool       // the ENTRYPOINT is in shell form
	copies     [][]string // the words of each COPY, flags included
}

// parseDockerfile reads the instructions the checks need: FROM, USER,
// ENTRYPOINT and COPY, with continued lines joined and comments dropped.
func parseDockerfile(text string) ([]dockerStage, error) {
	var stages []dockerStage
	text = strings.ReplaceAll(text, "\\\n", " ")
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			var words []string
			for _, w := range strings.Fields(rest) {
				if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			if len(words) == 0 {
				return nil, fmt.Errorf("line %d: FROM without an image", n+1)
			}
			st := dockerStage{base: words[0]}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				st.name = words[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if instr == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s before FROM", n+1, instr)
		}
		st := &stages[len(stages)-1]
		switch instr {
		case "USER":
			st.user = rest
		case "ENTRYPOINT":
			st.entrypoint, st.shellEntry = nil, !strings.HasPrefix(rest, "[")
			if !st.shellEntry {
				if err := json.Unmarshal([]byte(rest), &st.entrypoint); err != nil {
					return nil, fmt.Errorf("line %d: ENTRYPOINT: %v", n+1, err)
				}
			}
		case "COPY":
			st.copies = append(st.copies, strings.Fields(rest))
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// nonrootUID is the uid of the nonroot user of the distroless images.
const nonrootUID = 65532

// imageSpec is what the manifests must agree with: the image the release
// pushes and what its Dockerfile sets.
type imageSpec struct {
	repo      string // the image the release publishes, without a tag
	goVersion string // go.mod's go directive
	stages    []dockerStage
	uid       int64    // from USER; -1 if it is no number
	entry     []string // ENTRYPOINT
}

var (
	distrolessStatic = regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot(@sha256:[0-9a-f]{64})?$`)
	releaseTag       = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
)

// checkDockerfile checks the Dockerfile's stages and fills in the user and
// entrypoint of the image; it returns every problem found.
func checkDockerfile(spec *imageSpec) []string {
	var problems []string
	final := spec.stages[len(spec.stages)-1]
	if !distrolessStatic.MatchString(final.base) {
		problems = append(problems, fmt.Sprintf("the image is FROM %s, want a distroless static nonroot base", final.base))
	}
	uid, gid, _ := strings.Cut(final.user, ":")
	spec.uid = -1
	n, err := strconv.ParseInt(uid, 10, 64)
	if err == nil {
		spec.uid = n
	}
	if err != nil || n != nonrootUID || (gid != "" && gid != uid) {
		// A numeric uid lets the kubelet check runAsNonRoot.
		problems = append(problems, fmt.Sprintf("USER %q, want the base's nonroot user as a number, %d", final.user, nonrootUID))
	}
	if final.shellEntry || len(final.entrypoint) != 1 || filepath.Base(final.entrypoint[0]) != "fetchctl" {
		// The base has no shell to run a shell-form entrypoint with.
		problems = append(problems, fmt.Sprintf("ENTRYPOINT %q, want [\"/path/to/fetchctl\"] in exec form", final.entrypoint))
	} else {
		spec.entry = final.entrypoint
	}
	// The entrypoint is the binary that a Go stage of the same Go as go.mod
	// built.
	copied := false
	for _, c := range final.copies {
		from := slices.IndexFunc(spec.stages, func(s dockerStage) bool {
			return slices.Contains(c, "--from="+s.name) && s.name != ""
		})
		if from < 0 || len(spec.entry) == 0 || c[len(c)-1] != spec.entry[0] {
			continue
		}
		copied = true
		goMinor := strings.Join(strings.SplitN(spec.goVersion, ".", 3)[:2], ".")
		if b := spec.stages[from].base; b != "golang:"+goMinor && !strings.HasPrefix(b, "golang:"+goMinor+"-") && !strings.HasPrefix(b, "golang:"+goMinor+".") {
			problems = append(problems, fmt.Sprintf("the binary is built FROM %s, want golang:%s as go.mod says go %s", b, goMinor, spec.goVersion))
		}
	}
	if !copied {
		problems = append(problems, fmt.Sprintf("no COPY --from a build stage puts the binary at the entrypoint %q", spec.entry))
	}
	return problems
}

// checkPods checks that every pod of the manifests runs the released image
// as its user, with the image's entrypoint.
func checkPods(spec imageSpec, pods map[string]corev1.PodSpec) []string {
	var problems []string
	for where, pod := range pods {
		for _, c := range pod.Containers {
			where := where + " container " + c.Name
			repo, tag, _ := strings.Cut(c.Image, ":")
			if repo != spec.repo || !releaseTag.MatchString(tag) {
				problems = append(problems, fmt.Sprintf("%s: image %s, want %s:X.Y.Z as the release pushes it", where, c.Image, spec.repo))
			}
			sc := pod.SecurityContext
			if sc == nil {
				sc = &corev1.PodSecurityContext{}
			}
			uid, nonroot := sc.RunAsUser, sc.RunAsNonRoot
			if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
				uid = c.SecurityContext.RunAsUser
			}
			if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
				nonroot = c.SecurityContext.RunAsNonRoot
			}
			if spec.uid >= 0 && (uid == nil || *uid != spec.uid) {
				problems = append(problems, fmt.Sprintf("%s: runAsUser %v, want the image's user %d", where, deref(uid), spec.uid))
			}
			if nonroot == nil || !*nonroot {
				problems = append(problems, fmt.Sprintf("%s: runAsNonRoot is not true", where))
			}
			// A command replaces the image's entrypoint.
			if len(c.Command) > 0 && !slices.Equal(c.Command, spec.entry) {
				problems = append(problems, fmt.Sprintf("%s: command %q replaces the image's entrypoint %q", where, c.Command, spec.entry))
			}
		}
	}
	return problems
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// loadImageSpec reads the Dockerfile, go.mod and the image name that
// release.yml pushes, with GitHub's owner expression read as OWNER.
func loadImageSpec(t *testing.T) imageSpec {
	t.Helper()
	var spec imageSpec
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if spec.stages, err = parseDockerfile(string(df)); err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	spec.goVersion = string(m[1]) + string(m[2])
	wf := yamlDocs(t, "../../.github/workflows/release.yml")[0]
	for _, job := range wf["jobs"].(map[string]any) {
		for _, st := range yamlList(yamlGet(job, "steps")) {
			if strings.HasPrefix(yamlStr(yamlGet(st, "uses")), "docker/metadata-action@") {
				spec.repo = strings.ReplaceAll(yamlStr(yamlGet(st, "with", "images")), "${{ github.repository_owner }}", "OWNER")
			}
		}
	}
	if spec.repo == "" {
		t.Fatal("release.yml: no docker/metadata-action step names the image")
	}
	return spec
}

// manifestPods decodes the manifests strictly and returns their pods by Job.
func manifestPods(t *testing.T, files ...string) map[string]corev1.PodSpec {
	t.Helper()
	pods := map[string]corev1.PodSpec{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, obj := range objs {
			if job, ok := obj.(*batchv1.Job); ok {
				pods[filepath.Base(file)+": job "+job.Name] = job.Spec.Template.Spec
			}
		}
	}
	return pods
}

// TestImageMatchesManifests checks, without Docker, that the Dockerfile
// builds the image that configs/kubernetes/ expects: a distroless static
// nonroot base, the user the Jobs run as, fetchctl as the entrypoint, and
// the name release.yml pushes.
func TestImageMatchesManifests(t *testing.T) {
	t.Parallel()
	spec := loadImageSpec(t)
	if spec.repo != "ghcr.io/OWNER/fetchctl" {
		t.Errorf("release.yml pushes %s, want ghcr.io/OWNER/fetchctl as the README says", spec.repo)
	}
	for _, p := range checkDockerfile(&spec) {
		t.Error("Dockerfile: " + p)
	}
	files, err := filepath.Glob("../../configs/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under configs/kubernetes: %v", err)
	}
	pods := manifestPods(t, files...)
	if len(pods) == 0 {
		t.Fatal("no Job in configs/kubernetes")
	}
	for _, p := range checkPods(spec, pods) {
		t.Error(p)
	}
}

// TestImageChecks pins what the image checks reject.
func TestImageChecks(t *testing.T) {
	t.Parallel()
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	job, err := os.ReadFile("../../configs/kubernetes/summarize-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		file      string // "Dockerfile" or "job"
		old, new  string
		wantErr   string
		wantCount int
	}{
		{name: "as shipped"},
		{name: "debian base", file: "Dockerfile", old: "gcr.io/distroless/static-debian12:nonroot", new: "debian:12-slim",
			wantErr: "want a distroless static nonroot base"},
		{name: "root tag of distroless", file: "Dockerfile", old: "static-debian12:nonroot", new: "static-debian12:latest",
			wantErr: "want a distroless static nonroot base"},
		{name: "user by name", file: "Dockerfile", old: "USER 65532:65532", new: "USER nonroot",
			wantErr: `USER "nonroot"`},
		{name: "shell-form entrypoint", file: "Dockerfile", old: `ENTRYPOINT ["/usr/local/bin/fetchctl"]`, new: "ENTRYPOINT /usr/local/bin/fetchctl",
			wantErr: "in exec form"},
		{name: "binary copied elsewhere", file: "Dockerfile", old: "/out/fetchctl /usr/local/bin/fetchctl", new: "/out/fetchctl /fetchctl",
			wantErr: "puts the binary at the entrypoint"},
		{name: "older Go", file: "Dockerfile", old: "golang:1.26 AS", new: "golang:1.25 AS",
			wantErr: "want golang:1.26"},
		{name: "another user in the Job", file: "job", old: "runAsUser: 65532", new: "runAsUser: 1000",
			wantErr: "runAsUser 1000, want the image's user 65532"},
		{name: "root allowed", file: "job", old: "runAsNonRoot: true", new: "runAsNonRoot: false",
			wantErr: "runAsNonRoot is not true"},
		{name: "another image", file: "job", old: "ghcr.io/OWNER/fetchctl:", new: "registry.example.com/fetchctl:",
			wantErr: "want ghcr.io/OWNER/fetchctl:X.Y.Z"},
		{name: "command replaces the entrypoint", file: "job", old: "          args:\n", new: "          command: [\"/bin/fetchctl\"]\n          args:\n",
			wantErr: "replaces the image's entrypoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dfText, jobText := string(df), string(job)
			text := map[string]*string{"Dockerfile": &dfText, "job": &jobText}
			if tt.file != "" {
				if !strings.Contains(*text[tt.file], tt.old) {
					t.Fatalf("%s has no %q to change", tt.file, tt.old)
				}
				*text[tt.file] = strings.Replace(*text[tt.file], tt.old, tt.new, 1)
			}
			spec := loadImageSpec(t)
			stages, err := parseDockerfile(dfText)
			if err != nil {
				t.Fatal(err)
			}
			spec.stages = stages
			problems := checkDockerfile(&spec)
			tmp := filepath.Join(t.TempDir(), "job.yaml")
			if err := os.WriteFile(tmp, []byte(jobText), 0o644); err != nil {
				t.Fatal(err)
			}
			problems = append(problems, checkPods(spec, manifestPods(t, tmp))...)
			got := strings.Join(problems, "\n")
			if tt.wantErr == "" {
				if got != "" {
					t.Fatalf("problems with the shipped files:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, tt.wantErr) {
				t.Fatalf("problems:\n%s\nwant one containing %q", got, tt.wantErr)
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	text := "# syntax=docker/dockerfile:1\nARG GO=1.26\nFROM --platform=$BUILDPLATFORM golang:1.26 as build\n" +
		"RUN go build \\\n  -o /out/x .\nFROM scratch\nCOPY --from=build /out/x \\\n  /x\nUSER 1:2\nENTRYPOINT [\"/x\", \"run\"]\n"
	got, err := parseDockerfile(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []dockerStage{
		{base: "golang:1.26", name: "build"},
		{base: "scratch", user: "1:2", entrypoint: []string{"/x", "run"}, copies: [][]string{{"--from=build", "/out/x", "/x"}}},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("parseDockerfile = %+v\nwant %+v", got, want)
	}
	if _, err := parseDockerfile("USER 1\n"); err == nil {
		t.Error("an instruction before FROM parsed")
	}
}

// TestReleaseConfig checks that .goreleaser.yaml builds what the README
// promises, the way `make build` does, and that the workflows run the
// README's test command and the pinned goreleaser.
func TestReleaseConfig(t *testing.T) {
	t.Parallel()
	cfg := yamlDocs(t, "../../.goreleaser.yaml")[0]
	builds := yamlList(cfg["builds"])
	if len(builds) != 1 {
		t.Fatalf("%d builds, want 1", len(builds))
	}
	b := builds[0]
	strs := func(v any) []string {
		var out []string
		for _, x := range yamlList(v) {
			out = append(out, yamlStr(x))
		}
		return out
	}
	if got := yamlStr(yamlGet(b, "main")); got != "./cmd/fetchctl" {
		t.Errorf("build main %q, want ./cmd/fetchctl", got)
	}
	if !slices.Contains(strs(yamlGet(b, "env")), "CGO_ENABLED=0") || !slices.Contains(strs(yamlGet(b, "flags")), "-trimpath") {
		t.Errorf("build env %q flags %q: want CGO_ENABLED=0 and -trimpath as make build", strs(yamlGet(b, "env")), strs(yamlGet(b, "flags")))
	}
	ldflags := strings.Join(strs(yamlGet(b, "ldflags")), " ")
	for _, v := range []string{"-X main.version=", "-X main.commit="} {
		if !strings.Contains(ldflags, v) {
			t.Errorf("ldflags %q do not set %s", ldflags, v)
		}
	}
	for _, list := range []struct {
		key  string
		want []string
	}{{"goos", []string{"linux", "darwin", "windows"}}, {"goarch", []string{"amd64", "arm64"}}} {
		got := strs(yamlGet(b, list.key))
		slices.Sort(got)
		want := slices.Sorted(slices.Values(list.want))
		if !slices.Equal(got, want) {
			t.Errorf("build %s %q, want %q", list.key, got, want)
		}
	}
	files := strs(yamlGet(cfg, "archives", 0, "files"))
	if !slices.Contains(files, "README.md") || !slices.Contains(files, "LICENSE*") {
		t.Errorf("archive files %q, want README.md and LICENSE*", files)
	}
	if got := yamlStr(yamlGet(cfg, "checksum", "name_template")); got != "checksums.txt" {
		t.Errorf("checksum file %q, want checksums.txt", got)
	}

	// The goreleaser of release.yml is the one `make release-check` runs.
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`goreleaser/v2@(v[0-9.]+)`).FindSubmatch(mk)
	if pin == nil {
		t.Fatal("Makefile pins no goreleaser")
	}
	var used []string
	wf := yamlDocs(t, "../../.github/workflows/release.yml")[0]
	if tags := strs(yamlGet(wf, "on", "push", "tags")); len(tags) == 0 {
		t.Error("release.yml does not run on tags")
	}
	for _, job := range wf["jobs"].(map[string]any) {
		for _, st := range yamlList(yamlGet(job, "steps")) {
			if strings.HasPrefix(yamlStr(yamlGet(st, "uses")), "goreleaser/goreleaser-action@") {
				used = append(used, yamlStr(yamlGet(st, "with", "version")))
			}
		}
	}
	if !slices.Equal(used, []string{string(pin[1])}) {
		t.Errorf("release.yml runs goreleaser %q, want one step with the Makefile's %s", used, pin[1])
	}

	// ci.yml runs the README's test command.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## Test\n\n```sh\n([^\n]+)\n").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md: no command in the Test section")
	}
	testCmd := strings.TrimSpace(string(m[1]))
	var runs []string
	ci := yamlDocs(t, "../../.github/workflows/ci.yml")[0]
	for _, job := range ci["jobs"].(map[string]any) {
		for _, st := range yamlList(yamlGet(job, "steps")) {
			runs = append(runs, strings.Split(yamlStr(yamlGet(st, "run")), "\n")...)
		}
	}
	if !slices.Contains(runs, testCmd) {
		t.Errorf("ci.yml runs %q, want the README's test command %q", runs, testCmd)
	}
}
