package terraform_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"gopkg.in/yaml.v3"

	"github.com/replayvault/replayvault/shared/telemetry"
)

// The deployed collector and what may be granted to its account.
const (
	collectorAddr      = "google_cloud_run_v2_service.otel_collector"
	collectorImageRepo = "opentelemetry-collector-contrib"
)

// collectorRoles is every grant the collector's account may hold: write
// time series and spans, nothing else.
var collectorRoles = []string{"roles/cloudtrace.agent", "roles/monitoring.metricWriter"}

// privateGoogleAccessIPs are private.googleapis.com's addresses, which
// direct VPC egress routes through the VPC with private ranges only.
var privateGoogleAccessIPs = []string{"199.36.153.10", "199.36.153.11", "199.36.153.8", "199.36.153.9"}

func TestCollector(t *testing.T) {
	for _, err := range checkCollector(loadModule(t)) {
		t.Error(err)
	}
}

// checkCollector: the OpenTelemetry Collector runs on Cloud Run from the
// pinned contrib image with internal ingress, as its own service account
// holding exactly collectorRoles; only the four functions' accounts may
// invoke it; every function exports to its URL over OTLP/HTTP (the
// protocol shared/telemetry adds an ID token to) and reaches it through
// the VPC; its configuration receives OTLP/HTTP on the container port and
// sends metrics (with the prefix monitoring.tf's filters use) and traces
// to the googlecloud exporter.
func checkCollector(m *module) []error {
	var errs []error
	r := m.byAddr[collectorAddr]
	if r == nil {
		return []error{fmt.Errorf("no %s", collectorAddr)}
	}
	if n, err := countOf(m, r); err != nil || n != 1 {
		errs = append(errs, fmt.Errorf("%s: count %d (%v), want 1 with the default variables", collectorAddr, n, err))
	}
	if v, err := m.attrValue(r.block, "ingress", nil); err != nil || !v.RawEquals(cty.StringVal("INGRESS_TRAFFIC_INTERNAL_ONLY")) {
		errs = append(errs, fmt.Errorf("%s: ingress %#v (%v), want INGRESS_TRAFFIC_INTERNAL_ONLY", collectorAddr, v, err))
	}
	tmpl := firstBlock(r.block, "template")
	sa := m.symbolAddr(mustValue(m, tmpl, "service_account"))
	switch fns, _ := m.functions(); {
	case !strings.HasPrefix(sa, "google_service_account."):
		errs = append(errs, fmt.Errorf("%s: service_account is not a google_service_account of this module", collectorAddr))
	default:
		for _, entry := range sortedKeys(fns) {
			if fsa, err := fns[entry].serviceAccount(); err == nil && fsa == sa {
				errs = append(errs, fmt.Errorf("%s runs as %s, the account of %s", collectorAddr, sa, entry))
			}
		}
	}

	containers := blocksOf(tmpl, "containers")
	if len(containers) != 1 {
		return append(errs, fmt.Errorf("%s: %d containers, want 1", collectorAddr, len(containers)))
	}
	c := containers[0]
	if img := mustValue(m, c, "image"); !img.IsKnown() || img.IsNull() || !imageOK(img.AsString()) {
		errs = append(errs, fmt.Errorf("%s: image %#v is not the collector contrib image at a pinned release", collectorAddr, img))
	}
	port := int64(0)
	if p := firstBlock(c, "ports"); p != nil {
		port, _ = m.intAttr(p, "container_port")
	}
	if port == 0 {
		errs = append(errs, fmt.Errorf("%s: no container_port", collectorAddr))
	}
	errs = append(errs, checkCollectorConfig(m, c, port)...)
	if res := firstBlock(c, "resources"); res != nil && mustValue(m, res, "cpu_idle").RawEquals(cty.True) {
		errs = append(errs, checkExportsInRequest(m, c)...)
	}

	grants, gerrs := m.grants()
	errs = append(errs, gerrs...)
	errs = append(errs, checkCollectorGrants(m, grants, sa)...)
	errs = append(errs, checkFunctionsExport(m)...)
	return errs
}

// imageOK: the collector contrib image, tagged with a release version.
var releaseTag = regexp.MustCompile(`:[0-9]+\.[0-9]+\.[0-9]+$`)

func imageOK(img string) bool {
	return strings.Contains(img, "/"+collectorImageRepo+":") && releaseTag.MatchString(img)
}

// checkCollectorGrants: the collector's account holds exactly
// collectorRoles; the collector's invokers are exactly the functions'
// accounts.
func checkCollectorGrants(m *module, grants []grant, sa string) []error {
	var errs []error
	member := "serviceAccount:" + symbolicEmail(sa)
	var roles []string
	for _, g := range grants {
		if !slices.Contains(g.members, member) {
			continue
		}
		s := g.role
		if !g.projectLevel {
			s += " on " + g.target
		}
		roles = append(roles, s)
	}
	slices.Sort(roles)
	if !slices.Equal(roles, collectorRoles) {
		errs = append(errs, fmt.Errorf("collector account %s: grants %v, want exactly %v", sa, roles, collectorRoles))
	}

	fns, _ := m.functions()
	var want []string
	for _, entry := range sortedKeys(fns) {
		if fsa, err := fns[entry].serviceAccount(); err == nil {
			want = append(want, "serviceAccount:"+symbolicEmail(fsa))
		}
	}
	slices.Sort(want)
	var invokers []string
	for _, g := range grants {
		if g.target != collectorAddr {
			continue
		}
		if g.role != "roles/run.invoker" {
			errs = append(errs, fmt.Errorf("%s: grants %s on the collector", g.addr, g.role))
		}
		invokers = append(invokers, g.members...)
	}
	slices.Sort(invokers)
	if !slices.Equal(invokers, want) {
		errs = append(errs, fmt.Errorf("collector invokers %v, want exactly the functions' accounts %v", invokers, want))
	}
	return errs
}

// checkFunctionsExport: every function's OTEL_EXPORTER_OTLP_ENDPOINT is the
// collector's URL, over http/protobuf, and the functions' network has a
// private run.app zone sending *.run.app to private.googleapis.com (the
// collector's ingress is internal).
func checkFunctionsExport(m *module) []error {
	fns, errs := m.functions()
	networks := map[string]bool{}
	for _, entry := range sortedKeys(fns) {
		env, _, err := fns[entry].environment()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if addr := m.symbolAddr(env["OTEL_EXPORTER_OTLP_ENDPOINT"]); addr != collectorAddr {
			errs = append(errs, fmt.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT is %#v, not the collector's uri", entry, env["OTEL_EXPORTER_OTLP_ENDPOINT"]))
		}
		if p := env["OTEL_EXPORTER_OTLP_PROTOCOL"]; !p.RawEquals(cty.StringVal("http/protobuf")) {
			errs = append(errs, fmt.Errorf("%s: OTEL_EXPORTER_OTLP_PROTOCOL %#v, want http/protobuf (ID tokens ride on OTLP/HTTP)", entry, p))
		}
		sc := firstBlock(fns[entry].res.block, "service_config")
		for _, ni := range blocksOf(sc, "direct_vpc_network_interface") {
			networks[strings.Join(refs(ni.Body.Attributes["network"]), ",")] = true
		}
	}
	zoned := map[string]bool{}
	for _, r := range m.resources {
		if r.typ != "google_dns_managed_zone" || r.mode != "resource" {
			continue
		}
		name, _ := m.attrValue(r.block, "dns_name", nil)
		vis, _ := m.attrValue(r.block, "visibility", nil)
		if !name.RawEquals(cty.StringVal("run.app.")) || !vis.RawEquals(cty.StringVal("private")) {
			continue
		}
		for _, n := range blocksOf(firstBlock(r.block, "private_visibility_config"), "networks") {
			for _, ref := range refs(n.Body.Attributes["network_url"]) {
				zoned[ref] = true
			}
		}
		found := false
		for _, rs := range m.resources {
			if rs.typ != "google_dns_record_set" || !slices.Contains(refs(rs.block.Body.Attributes["managed_zone"]), r.addr()) {
				continue
			}
			recName, _ := m.attrValue(rs.block, "name", nil)
			ips, err := m.attrValue(rs.block, "rrdatas", nil)
			if err != nil || !recName.RawEquals(cty.StringVal("*.run.app.")) || !ips.IsWhollyKnown() {
				continue
			}
			var got []string
			for it := ips.ElementIterator(); it.Next(); {
				_, ip := it.Element()
				got = append(got, ip.AsString())
			}
			slices.Sort(got)
			found = slices.Equal(got, privateGoogleAccessIPs)
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s: no *.run.app record to %v", r.addr(), privateGoogleAccessIPs))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(networks)) {
		if !zoned[n] {
			errs = append(errs, fmt.Errorf("network %s of the functions has no private run.app zone: they would reach the internal-only collector from outside", n))
		}
	}
	return errs
}

// collectorConfig is the part of the collector's configuration checked.
type collectorConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols map[string]struct {
				Endpoint string `yaml:"endpoint"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Processors map[string]any `yaml:"processors"`
	Exporters  map[string]struct {
		Project string `yaml:"project"`
		Metric  struct {
			Prefix string `yaml:"prefix"`
		} `yaml:"metric"`
		SendingQueue struct {
			Enabled *bool `yaml:"enabled"`
		} `yaml:"sending_queue"`
	} `yaml:"exporters"`
	Service struct {
		Pipelines map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// renderCollectorConfig renders the configuration the container receives
// (args --config=env:NAME and env NAME) for a known project.
func renderCollectorConfig(m *module, c *hclsyntax.Block) (*collectorConfig, error) {
	args := mustValue(m, c, "args")
	envName := ""
	if args.IsWhollyKnown() && !args.IsNull() {
		for it := args.ElementIterator(); it.Next(); {
			_, a := it.Element()
			if name, ok := strings.CutPrefix(a.AsString(), "--config=env:"); ok {
				envName = name
			}
		}
	}
	if envName == "" {
		return nil, fmt.Errorf("%s: args do not read the configuration from an env variable (--config=env:NAME)", collectorAddr)
	}
	var cfgExpr hclsyntax.Expression
	for _, e := range blocksOf(c, "env") {
		if n, _ := m.attrValue(e, "name", nil); n.RawEquals(cty.StringVal(envName)) && e.Body.Attributes["value"] != nil {
			cfgExpr = e.Body.Attributes["value"].Expr
		}
	}
	if cfgExpr == nil {
		return nil, fmt.Errorf("%s: no env %s with the configuration", collectorAddr, envName)
	}
	ctx := m.ctx.NewChild()
	vars := m.ctx.Variables["var"].AsValueMap()
	vars["project_id"] = cty.StringVal("test-project")
	ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(vars)}
	// Locals were evaluated with an unknown project: re-evaluate the ones
	// the expression names.
	locals := m.ctx.Variables["local"].AsValueMap()
	for _, tr := range cfgExpr.Variables() {
		if tr.RootName() == "local" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				if v, diags := m.locals[a.Name].Value(ctx); !diags.HasErrors() {
					locals[a.Name] = v
				}
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	v, diags := cfgExpr.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.Type() != cty.String {
		return nil, fmt.Errorf("%s: configuration does not render: %v", collectorAddr, diags)
	}
	var cfg collectorConfig
	if err := yaml.Unmarshal([]byte(v.AsString()), &cfg); err != nil {
		return nil, fmt.Errorf("%s: configuration: %w", collectorAddr, err)
	}
	return &cfg, nil
}

// checkCollectorConfig renders the configuration the container receives
// and checks it.
func checkCollectorConfig(m *module, c *hclsyntax.Block, port int64) []error {
	cfg, err := renderCollectorConfig(m, c)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if p, ok := cfg.Receivers.OTLP.Protocols["http"]; !ok || !strings.HasSuffix(p.Endpoint, fmt.Sprintf(":%d", port)) {
		errs = append(errs, fmt.Errorf("collector: the otlp receiver does not take OTLP/HTTP on the container port %d (%+v)", port, cfg.Receivers.OTLP.Protocols))
	}
	gc, ok := cfg.Exporters["googlecloud"]
	if !ok {
		errs = append(errs, errors.New("collector: no googlecloud exporter"))
	}
	if want := strings.TrimSuffix(otelPrefix, "/"); gc.Metric.Prefix != want {
		errs = append(errs, fmt.Errorf("collector: metric prefix %q, but monitoring.tf's filters read %s", gc.Metric.Prefix, otelPrefix))
	}
	if gc.Project != "test-project" {
		errs = append(errs, fmt.Errorf("collector: exporter project %q, want var.project_id", gc.Project))
	}
	for _, signal := range []string{"metrics", "traces"} {
		p, ok := cfg.Service.Pipelines[signal]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("collector: no %s pipeline", signal))
		case !slices.Contains(p.Receivers, "otlp") || !slices.Equal(p.Exporters, []string{"googlecloud"}):
			errs = append(errs, fmt.Errorf("collector: %s pipeline %v -> %v, want otlp -> googlecloud only", signal, p.Receivers, p.Exporters))
		case len(p.Processors) == 0 || p.Processors[0] != "memory_limiter":
			errs = append(errs, fmt.Errorf("collector: %s pipeline processors %v do not start with memory_limiter", signal, p.Processors))
		}
		for _, proc := range p.Processors {
			if _, ok := cfg.Processors[proc]; !ok {
				errs = append(errs, fmt.Errorf("collector: %s pipeline uses undefined processor %s", signal, proc))
			}
		}
	}
	return errs
}

// checkExportsInRequest: with cpu_idle (CPU only while a request is
// served), the collector must export before it answers: no batch
// processor, and the googlecloud exporter's sending queue off. Otherwise
// data waits for CPU that Cloud Run gives only to the next request, and is
// lost when the instance is stopped.
func checkExportsInRequest(m *module, c *hclsyntax.Block) []error {
	cfg, err := renderCollectorConfig(m, c)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if q := cfg.Exporters["googlecloud"].SendingQueue.Enabled; q == nil || *q {
		errs = append(errs, errors.New("collector: cpu_idle is on but the googlecloud exporter's sending_queue is not disabled: exports would run after the request, without CPU"))
	}
	for signal, p := range cfg.Service.Pipelines {
		for _, proc := range p.Processors {
			if strings.HasPrefix(proc, "batch") {
				errs = append(errs, fmt.Errorf("collector: cpu_idle is on but the %s pipeline batches (%s): exports would run after the request, without CPU", signal, proc))
			}
		}
	}
	return errs
}

// mustValue evaluates attribute name of b, cty.NilVal-safe: unknown on
// error.
func mustValue(m *module, b *hclsyntax.Block, name string) cty.Value {
	v, err := m.attrValue(b, name, nil)
	if err != nil || v == cty.NilVal {
		return cty.DynamicVal
	}
	return v
}

// countOf evaluates r's count (1 without one).
func countOf(m *module, r *resource) (int64, error) {
	if _, ok := r.block.Body.Attributes["count"]; !ok {
		return 1, nil
	}
	return m.intAttr(r.block, "count")
}

// templateFileFunc is Terraform's templatefile over the module's *.tftpl
// files.
func templateFileFunc(templates map[string][]byte) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := filepath.Clean(args[0].AsString())
			src, ok := templates[name]
			if !ok {
				return cty.NilVal, fmt.Errorf("templatefile: no template %s in the module", name)
			}
			expr, diags := hclsyntax.ParseTemplate(src, name, hcl.InitialPos)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			vars := map[string]cty.Value{}
			if a := args[1]; a.IsKnown() && !a.IsNull() && a.CanIterateElements() {
				for it := a.ElementIterator(); it.Next(); {
					k, v := it.Element()
					vars[k.AsString()] = v
				}
			}
			for _, tr := range expr.Variables() {
				if _, ok := vars[tr.RootName()]; !ok {
					return cty.NilVal, fmt.Errorf("templatefile %s: no variable %s", name, tr.RootName())
				}
			}
			v, diags := expr.Value(&hcl.EvalContext{Variables: vars})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return convert.Convert(v, cty.String)
		},
	})
}

// TestCollectorChecksCatchMistakes breaks the collector's deployment the
// way careless edits would and expects checkCollector to say so.
func TestCollectorChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name, file, old, new, want string
	}{
		{"public ingress", "otel.tf", `ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"`, `ingress             = "INGRESS_TRAFFIC_ALL"`,
			"ingress cty.StringVal(\"INGRESS_TRAFFIC_ALL\")"},
		{"collector may read logs too", "otel.tf", `otel_collector_roles = ["roles/monitoring.metricWriter", "roles/cloudtrace.agent"]`,
			`otel_collector_roles = ["roles/monitoring.metricWriter", "roles/cloudtrace.agent", "roles/logging.viewer"]`,
			"grants [roles/cloudtrace.agent roles/logging.viewer roles/monitoring.metricWriter], want exactly"},
		{"anyone may send telemetry", "otel.tf", `ingest = google_service_account.ingest.member
  }`, `ingest = google_service_account.ingest.member
    anyone = "allUsers"
  }`, "collector invokers [allUsers serviceAccount:"},
		{"a function cannot send", "otel.tf", `    shred  = google_service_account.shred.member
`, ``, "collector invokers"},
		{"collector runs as Pack", "otel.tf", `= google_service_account.otel_collector.email`, `= google_service_account.pack.email`,
			"runs as google_service_account.pack, the account of Pack"},
		{"latest image", "otel.tf", `image = "${var.otel_collector_image}:${var.otel_collector_version}"`, `image = "${var.otel_collector_image}:latest"`,
			"is not the collector contrib image at a pinned release"},
		{"functions export nowhere", "otel.tf", `OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT = var.otel_collector_endpoint`,
			"Pack: OTEL_EXPORTER_OTLP_ENDPOINT is"},
		{"gRPC to Cloud Run", "otel.tf", `OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf"`, `OTEL_EXPORTER_OTLP_PROTOCOL = "grpc"`,
			"want http/protobuf"},
		{"no private run.app zone", "otel.tf", `dns_name    = "run.app."`, `dns_name    = "example.com."`,
			"has no private run.app zone"},
		{"receiver on another port", "otel-collector.yaml.tftpl", `endpoint: 0.0.0.0:${port}`, `endpoint: 0.0.0.0:4317`,
			"does not take OTLP/HTTP on the container port 4318"},
		{"other metric prefix", "otel-collector.yaml.tftpl", `prefix: ${metric_prefix}`, `prefix: custom.googleapis.com`,
			`metric prefix "custom.googleapis.com"`},
		{"traces not exported", "otel-collector.yaml.tftpl", "    traces:\n      receivers: [otlp]\n      processors: [memory_limiter]\n      exporters: [googlecloud]", "    traces:\n      receivers: [otlp]\n      processors: [memory_limiter]\n      exporters: [debug]",
			"traces pipeline [otlp] -> [debug]"},
		{"queued exports without CPU", "otel-collector.yaml.tftpl", "    sending_queue:\n      enabled: false\n", "",
			"sending_queue is not disabled"},
		{"batched exports without CPU", "otel-collector.yaml.tftpl", "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter]", "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]",
			"the metrics pipeline batches (batch)"},
		{"no memory limiter", "otel-collector.yaml.tftpl", "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter]", "    metrics:\n      receivers: [otlp]\n      processors: [batch]",
			"metrics pipeline processors [batch] do not start with memory_limiter"},
	}
	files := readTF(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mutated := maps.Clone(files)
			src := string(mutated[tc.file])
			if n := strings.Count(src, tc.old); n != 1 {
				t.Fatalf("%s contains %q %d times, want 1", tc.file, tc.old, n)
			}
			mutated[tc.file] = []byte(strings.Replace(src, tc.old, tc.new, 1))
			m, err := parseModule(mutated)
			if err != nil {
				t.Fatal(err)
			}
			if errs := checkCollector(m); !containsError(errs, tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, errs)
			}
		})
	}
}

// TestCollectorEndpointVariables: otel_collector_endpoint sends the
// functions to another collector and deploys none; deploy_otel_collector =
// false without it turns telemetry off (an empty endpoint).
func TestCollectorEndpointVariables(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		wantEndpoint   string
	}{
		{"existing collector", "  type        = string\n  default     = \"\"\n}\n\nvariable \"otel_collector_image\"",
			"  type        = string\n  default     = \"https://mine-xyz.a.run.app\"\n}\n\nvariable \"otel_collector_image\"", "https://mine-xyz.a.run.app"},
		{"telemetry off", "  type        = bool\n  default     = true\n}\n\nvariable \"otel_collector_endpoint\"",
			"  type        = bool\n  default     = false\n}\n\nvariable \"otel_collector_endpoint\"", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readTF(t)
			src := string(files["otel.tf"])
			if n := strings.Count(src, tc.old); n != 1 {
				t.Fatalf("otel.tf contains %q %d times, want 1", tc.old, n)
			}
			files["otel.tf"] = []byte(strings.Replace(src, tc.old, tc.new, 1))
			m, err := parseModule(files)
			if err != nil {
				t.Fatal(err)
			}
			fns, errs := m.functions()
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			for _, entry := range sortedKeys(fns) {
				env, _, err := fns[entry].environment()
				if err != nil {
					t.Fatal(err)
				}
				if got := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; !got.RawEquals(cty.StringVal(tc.wantEndpoint)) {
					t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %#v, want %q", entry, got, tc.wantEndpoint)
				}
			}
			for _, addr := range []string{collectorAddr, "google_dns_managed_zone.run_app"} {
				if n, err := countOf(m, m.byAddr[addr]); err != nil || n != 0 {
					t.Errorf("%s: count %d (%v), want 0", addr, n, err)
				}
			}
			grants, _ := m.grants()
			for _, g := range grants {
				if g.target == collectorAddr || slices.Contains(collectorRoles, g.role) {
					t.Errorf("%s: grant %s remains without a collector", g.addr, g.role)
				}
			}
		})
	}
}

// TestMonitoredResource keeps monitoring.tf's resource type the one
// shared/telemetry documents for its exporter mapping.
func TestMonitoredResource(t *testing.T) {
	m := loadModule(t)
	v := m.ctx.Variables["local"].GetAttr("otel_resource")
	if want := `resource.type="` + telemetry.MonitoredResource + `"`; !v.RawEquals(cty.StringVal(want)) {
		t.Errorf("local.otel_resource = %#v, want %q", v, want)
	}
}
