package terraform_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/replayvault/replayvault/shared/telemetry"
)

// otelPrefix is where Cloud Monitoring puts metrics exported over OTLP.
const otelPrefix = "workload.googleapis.com/"

// Metrics of the Google services replayvault runs on.
const (
	dlqMetric     = "pubsub.googleapis.com/subscription/num_undelivered_messages"
	alloyCPU      = "alloydb.googleapis.com/instance/cpu/average_utilization"
	channelsVar   = "var.notification_channels"
	ackDeadlineTF = "pack_ack_deadline_seconds"
)

// dashboardPanels: what an operator must find on the dashboard, by the
// metric that shows it. Names come from shared/telemetry, so renaming a
// metric in the code without the dashboard fails here.
var dashboardPanels = map[string]string{
	"ingest rate":      otelPrefix + telemetry.MetricPackReceived,
	"flush size":       otelPrefix + telemetry.MetricPackFlushBytes,
	"ack p99":          otelPrefix + telemetry.MetricPackAckWait,
	"reject rate":      otelPrefix + telemetry.MetricPackRejected,
	"Serve p99":        otelPrefix + telemetry.MetricHTTPDuration,
	"Serve error rate": otelPrefix + telemetry.MetricHTTPRequests,
	"DLQ depth":        dlqMetric,
	"AlloyDB CPU":      alloyCPU,
}

// requiredAlerts: the alert policies that must exist, by the metric of
// their condition.
var requiredAlerts = map[string]string{
	"ack p99 near the ack deadline": otelPrefix + telemetry.MetricPackAckWait,
	"any DLQ message":               dlqMetric,
	"reject rate spike":             otelPrefix + telemetry.MetricPackRejected,
	"5xx rate":                      otelPrefix + telemetry.MetricHTTPRequests,
	"sweep backlog growing":         otelPrefix + telemetry.MetricSweepBacklog,
}

var metricType = regexp.MustCompile(`metric\.type\s*=\s*"([^"]+)"`)

func TestMonitoring(t *testing.T) {
	for _, err := range checkMonitoring(loadModule(t)) {
		t.Error(err)
	}
}

// checkMonitoring: the dashboard shows every panel of dashboardPanels and
// each alert of requiredAlerts exists; every replayvault metric they name
// is one shared/telemetry emits; every alert notifies
// var.notification_channels, which must not be empty; the ack-wait alert
// fires before the push subscription's ack deadline.
func checkMonitoring(m *module) []error {
	var errs []error
	emitted := map[string]bool{}
	for _, n := range telemetry.MetricNames() {
		emitted[otelPrefix+n] = true
	}
	checkNames := func(where string, types []string) {
		for _, ty := range types {
			if strings.HasPrefix(ty, otelPrefix) && !emitted[ty] {
				errs = append(errs, fmt.Errorf("%s: metric %s is not one shared/telemetry emits", where, ty))
			}
		}
	}

	var dashboards []*resource
	var alerts []*resource
	for _, r := range m.resources {
		switch r.typ {
		case "google_monitoring_dashboard":
			dashboards = append(dashboards, r)
		case "google_monitoring_alert_policy":
			alerts = append(alerts, r)
		}
	}
	if len(dashboards) != 1 {
		errs = append(errs, fmt.Errorf("%d google_monitoring_dashboard resources, want 1", len(dashboards)))
	}
	for _, d := range dashboards {
		v, err := m.attrValue(d.block, "dashboard_json", nil)
		if err != nil || !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.String {
			errs = append(errs, fmt.Errorf("%s: dashboard_json does not evaluate to a string: %v", d.addr(), err))
			continue
		}
		var doc any
		if err := json.Unmarshal([]byte(v.AsString()), &doc); err != nil {
			errs = append(errs, fmt.Errorf("%s: dashboard_json: %w", d.addr(), err))
			continue
		}
		var types []string
		for _, q := range jsonFilters(doc) {
			for _, mt := range metricType.FindAllStringSubmatch(q.filter, -1) {
				types = append(types, mt[1])
			}
			errs = append(errs, checkFilter(d.addr(), q.filter, q.groupBy)...)
		}
		checkNames(d.addr(), types)
		for _, panel := range sortedKeys(dashboardPanels) {
			if !slices.Contains(types, dashboardPanels[panel]) {
				errs = append(errs, fmt.Errorf("%s: no chart of %s (%s)", d.addr(), panel, dashboardPanels[panel]))
			}
		}
	}

	ackDeadline := int64(0)
	if b := m.variables[ackDeadlineTF]; b != nil {
		if v, err := m.attrValue(b, "default", nil); err == nil {
			ackDeadline, _ = intOf(v)
		}
	}
	alerted := map[string]bool{}
	for _, a := range alerts {
		attr := a.block.Body.Attributes["notification_channels"]
		if !slices.Contains(refs(attr), channelsVar) {
			errs = append(errs, fmt.Errorf("%s: notification_channels must be %s", a.addr(), channelsVar))
		}
		for _, c := range blocksOf(a.block, "conditions") {
			th := firstBlock(c, "condition_threshold")
			if th == nil {
				errs = append(errs, fmt.Errorf("%s: a condition without condition_threshold", a.addr()))
				continue
			}
			var types []string
			for _, f := range [][2]string{{"filter", "aggregations"}, {"denominator_filter", "denominator_aggregations"}} {
				name, aggs := f[0], f[1]
				v, err := m.attrValue(th, name, nil)
				if err != nil || !v.IsWhollyKnown() {
					errs = append(errs, fmt.Errorf("%s: %s: %v", a.addr(), name, err))
					continue
				}
				if v.IsNull() {
					continue
				}
				for _, mt := range metricType.FindAllStringSubmatch(v.AsString(), -1) {
					types = append(types, mt[1])
				}
				var groupBy []string
				for _, ag := range blocksOf(th, aggs) {
					if g, err := m.attrValue(ag, "group_by_fields", nil); err == nil && g.IsWhollyKnown() && !g.IsNull() {
						for it := g.ElementIterator(); it.Next(); {
							_, f := it.Element()
							groupBy = append(groupBy, f.AsString())
						}
					}
				}
				errs = append(errs, checkFilter(a.addr(), v.AsString(), groupBy)...)
			}

			checkNames(a.addr(), types)
			if len(types) > 0 {
				alerted[types[0]] = true
			}
			if len(types) > 0 && types[0] == otelPrefix+telemetry.MetricPackAckWait {
				v, err := m.attrValue(th, "threshold_value", nil)
				f, _ := v.AsBigFloat().Float64()
				if err != nil || ackDeadline == 0 || f <= 0 || f >= float64(ackDeadline) {
					errs = append(errs, fmt.Errorf("%s: ack-wait threshold %v s must lie between 0 and the ack deadline (%d s)", a.addr(), f, ackDeadline))
				}
			}
		}
	}
	for _, what := range sortedKeys(requiredAlerts) {
		if !alerted[requiredAlerts[what]] {
			errs = append(errs, fmt.Errorf("no alert policy for %s (a condition on %s)", what, requiredAlerts[what]))
		}
	}
	if v := m.variables[strings.TrimPrefix(channelsVar, "var.")]; v == nil {
		errs = append(errs, fmt.Errorf("no variable %s", channelsVar))
	} else if !requiresChannel(m, v) {
		errs = append(errs, fmt.Errorf("%s: must require at least one channel (a validation on its length)", channelsVar))
	}
	return errs
}

// serviceLabels are the metric labels the collector's exporter adds to
// every time series besides the instrument's attributes
// (service_resource_labels and instrumentation_library_labels, both on by
// default).
var serviceLabels = []string{"service_name", "service_namespace", "service_instance_id", "instrumentation_source", "instrumentation_version"}

var (
	resourceType = regexp.MustCompile(`resource\.type\s*=\s*"([^"]*)"`)
	metricLabel  = regexp.MustCompile(`metric\.labels?\.("[^"]*"|[A-Za-z0-9_.]+)`)
)

// checkFilter: a filter on a replayvault metric names the monitored
// resource the collector writes it against (telemetry.MonitoredResource),
// and every metric label it or its group-by names is one the metric has:
// an attribute of telemetry.MetricAttributes as the exporter renames it
// (telemetry.MetricLabel), or one of serviceLabels.
func checkFilter(where, filter string, groupBy []string) []error {
	mt := metricType.FindStringSubmatch(filter)
	if mt == nil || !strings.HasPrefix(mt[1], otelPrefix) {
		return nil
	}
	name := strings.TrimPrefix(mt[1], otelPrefix)
	var errs []error
	rt := resourceType.FindAllStringSubmatch(filter, -1)
	if len(rt) != 1 || rt[0][1] != telemetry.MonitoredResource {
		errs = append(errs, fmt.Errorf("%s: filter on %s must name resource.type=%q, the resource the collector writes it to: %s", where, name, telemetry.MonitoredResource, filter))
	}
	allowed := slices.Clone(serviceLabels)
	for _, k := range telemetry.MetricAttributes()[name] {
		allowed = append(allowed, telemetry.MetricLabel(k))
	}
	var labels []string
	for _, l := range metricLabel.FindAllStringSubmatch(filter+" "+strings.Join(groupBy, " "), -1) {
		labels = append(labels, l[1])
	}
	for _, l := range labels {
		if !slices.Contains(allowed, l) {
			errs = append(errs, fmt.Errorf("%s: %s has no label %s (its labels: %v)", where, name, l, allowed))
		}
	}
	return errs
}

// filterQuery is one time series filter of the dashboard and its group-by.
type filterQuery struct {
	filter  string
	groupBy []string
}

// jsonFilters returns every object of doc with a "filter" string, with the
// groupByFields of its "aggregation".
func jsonFilters(doc any) []filterQuery {
	var out []filterQuery
	switch d := doc.(type) {
	case map[string]any:
		if f, ok := d["filter"].(string); ok {
			q := filterQuery{filter: f}
			if ag, ok := d["aggregation"].(map[string]any); ok {
				if g, ok := ag["groupByFields"].([]any); ok {
					for _, x := range g {
						if s, ok := x.(string); ok {
							q.groupBy = append(q.groupBy, s)
						}
					}
				}
			}
			out = append(out, q)
		}
		for _, v := range d {
			out = append(out, jsonFilters(v)...)
		}
	case []any:
		for _, v := range d {
			out = append(out, jsonFilters(v)...)
		}
	}
	return out
}

// requiresChannel reports whether one of the variable's validations
// refuses an empty list (conditions this test cannot evaluate are skipped).
func requiresChannel(m *module, v *hclsyntax.Block) bool {
	vars := m.ctx.Variables["var"].AsValueMap()
	vars[strings.TrimPrefix(channelsVar, "var.")] = cty.ListValEmpty(cty.String)
	ctx := m.ctx.NewChild()
	ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(vars)}
	for _, val := range blocksOf(v, "validation") {
		cond := val.Body.Attributes["condition"]
		if cond == nil {
			continue
		}
		ok, diags := cond.Expr.Value(ctx)
		if !diags.HasErrors() && ok.IsKnown() && ok.Type() == cty.Bool && ok.False() {
			return true
		}
	}
	return false
}

// TestMonitoringChecksCatchMistakes breaks monitoring.tf the way careless
// edits would and expects checkMonitoring to say so.
func TestMonitoringChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"metric renamed in the code only", `flush_bytes    = "replayvault.pack.flush.bytes"`, `flush_bytes    = "replayvault.pack.flush.size"`,
			"replayvault.pack.flush.size is not one shared/telemetry emits"},
		{"alert without channels", "combiner              = \"OR\"\n  notification_channels = var.notification_channels\n  conditions {\n    display_name = \"dead-letter backlog > 0\"",
			"combiner              = \"OR\"\n  conditions {\n    display_name = \"dead-letter backlog > 0\"",
			"google_monitoring_alert_policy.dead_letter: notification_channels must be var.notification_channels"},
		{"channels optional", "condition     = length(var.notification_channels) > 0", "condition     = length(var.notification_channels) >= 0",
			"must require at least one channel"},
		{"no AlloyDB chart", `"dlq_depth", "alloydb_cpu", "sweep_backlog"]`, `"dlq_depth", "sweep_backlog"]`,
			"no chart of AlloyDB CPU"},
		{"ack alert past the deadline", "default     = 0.5", "default     = 1.5",
			"ack-wait threshold 90 s must lie between 0 and the ack deadline"},
		{"no sweep alert", `filter          = "metric.type=\"${local.otel}/${local.metric.sweep_backlog}\" AND ${local.otel_resource}"`, `filter          = "metric.type=\"${local.otel}/${local.metric.received}\" AND ${local.otel_resource}"`,
			"no alert policy for sweep backlog growing"},
		{"filter without the resource type", `filter = "metric.type=\"${local.otel}/${local.metric.received}\" AND ${local.otel_resource}"`, `filter = "metric.type=\"${local.otel}/${local.metric.received}\""`,
			`filter on replayvault.pack.segments.received must name resource.type="generic_task"`},
		{"resource type of the Prometheus exporter", `otel_resource = "resource.type=\"generic_task\""`, `otel_resource = "resource.type=\"prometheus_target\""`,
			`must name resource.type="generic_task"`},
		{"label as the attribute is spelled", `group = ["metric.label.http_response_status_code"]`, `group = ["metric.label.\"http.response.status_code\""]`,
			`has no label "http.response.status_code"`},
		{"label the code never sets", `group = ["metric.label.reject_reason"]`, `group = ["metric.label.reason"]`,
			"replayvault.pack.segments.rejected has no label reason"},
		{"alert grouped by a missing label", `group_by_fields      = ["metric.label.function"]
      }
      denominator_aggregations`, `group_by_fields      = ["metric.label.fn"]
      }
      denominator_aggregations`, "replayvault.http.requests has no label fn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := readTF(t)
			src := string(files["monitoring.tf"])
			if !strings.Contains(src, tc.old) {
				t.Fatalf("monitoring.tf no longer contains %q", tc.old)
			}
			files["monitoring.tf"] = []byte(strings.Replace(src, tc.old, tc.new, 1))
			m, err := parseModule(files)
			if err != nil {
				t.Fatal(err)
			}
			errs := checkMonitoring(m)
			if !containsError(errs, tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, errs)
			}
		})
	}
}
