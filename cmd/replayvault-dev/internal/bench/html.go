package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: the
// settings, the targets, and inline SVG plots (no scripts, no external
// resources) of ack latency and CPU per segment against offered load
// (packer beside naive), read time against replay length, and cost against
// retention.
func (r *Report) WriteHTML(w io.Writer) error {
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	steps := func(d DesignResult, y func(StepResult) float64) []point {
		var ps []point
		for _, s := range d.Steps {
			if v := y(s); s.OfferedPerS > 0 && !math.IsNaN(v) && v > 0 {
				ps = append(ps, point{s.OfferedPerS, v})
			}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].x < ps[j].x })
		return ps
	}
	ackP99 := func(s StepResult) float64 { return s.AckP99MS }
	cpu := func(s StepResult) float64 { return s.CPUPer1000 }
	var plots []template.HTML
	if len(r.Ingest.Packer.Steps)+len(r.Ingest.Naive.Steps) > 0 {
		plots = append(plots,
			svgChart("Ack latency p99 against offered load", "offered segments/s", "ack p99 (ms)", true, true,
				[]series{{"packer", steps(r.Ingest.Packer, ackP99)}, {"naive", steps(r.Ingest.Naive, ackP99)}}),
			svgChart("CPU per 1,000 segments against offered load", "offered segments/s", "CPU s per 1,000", true, false,
				[]series{{"packer", steps(r.Ingest.Packer, cpu)}, {"naive", steps(r.Ingest.Naive, cpu)}}))
	}
	if r.Read != nil && len(r.Read.Rows) > 0 {
		var serve, seq, par []point
		for _, row := range r.Read.Rows {
			x := float64(row.Segments)
			serve = append(serve, point{x, row.Serve.TotalMS})
			seq = append(seq, point{x, row.Sequential.TotalMS})
			par = append(par, point{x, row.Parallel.TotalMS})
		}
		plots = append(plots, svgChart("Read time against replay length", "segments in the replay", "time to read all (ms)", true, true,
			[]series{{"Serve", serve}, {"naive sequential", seq}, {"naive 10 parallel", par}}))
	}
	if c := r.Costs; c.PackerUSD.Total > 0 || c.NaiveUSD.Total > 0 {
		life := func(u Cost) []point {
			var ps []point
			for m := 1; m <= 12; m++ {
				ps = append(ps, point{float64(m), u.ClassA + u.ClassB + u.KMS + u.StorageMonth*float64(m)})
			}
			return ps
		}
		plots = append(plots, svgChart("Cost per million segments over retention", "months retained", "USD per million segments", false, false,
			[]series{{"packer", life(c.PackerUSD)}, {"naive", life(c.NaiveUSD)}}))
	}
	return htmlReport.Execute(w, struct {
		R     *Report
		Plots []template.HTML
		Table string
	}{r, plots, table.String()})
}

var htmlReport = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>replayvault-dev bench {{.R.Started}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:20px} .plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px} table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left} .met{color:#17803d} .missed{color:#b42318}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
</style></head><body>
<h1>replayvault-dev bench — {{if .R.Quick}}quick{{else}}full{{end}} run, {{.R.Started}}</h1>
<p>{{.R.Machine.CPUs}} CPUs ({{.R.Machine.CPUModel}}), {{.R.Machine.GoVersion}}; load average {{printf "%.1f" .R.Machine.LoadAvgStart}} at start, {{printf "%.1f" .R.Machine.LoadAvgEnd}} at end.</p>
{{if .R.Targets}}<h2>Targets</h2><table><tr><th>target</th><th>want</th><th>got</th><th></th></tr>
{{range .R.Targets}}<tr><td>{{.Name}}</td><td>{{.Want}}</td><td>{{.Got}}</td><td class="{{if .Met}}met{{else}}missed{{end}}">{{if .Met}}met{{else}}missed{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Plots</h2><div class="plots">{{range .Plots}}<figure>{{.}}</figure>{{end}}</div>
<h2>Full report</h2><pre>{{.Table}}</pre>
</body></html>
`))

type point struct{ x, y float64 }

type series struct {
	name   string
	points []point
}

var palette = []string{"#2a6fdb", "#d9480f", "#2b8a3e", "#862e9c"}

// svgChart draws series as lines with markers on (optionally log-scaled)
// axes, with ticks, labels and a legend, as inline SVG.
func svgChart(title, xLabel, yLabel string, logX, logY bool, ss []series) template.HTML {
	const W, H, L, R, T, B = 520.0, 300.0, 64.0, 16.0, 28.0, 44.0
	var xs, ys []float64
	for _, s := range ss {
		for _, p := range s.points {
			if (!logX || p.x > 0) && (!logY || p.y > 0) {
				xs, ys = append(xs, p.x), append(ys, p.y)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="%s">`, W, H, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14" font-weight="600">%s</text>`, L, template.HTMLEscapeString(title))
	if len(xs) == 0 {
		b.WriteString(`<text x="64" y="150" fill="#888">no data</text></svg>`)
		return template.HTML(b.String())
	}
	xa, ya := newAxis(xs, logX, false), newAxis(ys, logY, true)
	px := func(x float64) float64 { return L + (W-L-R)*xa.frac(x) }
	py := func(y float64) float64 { return H - B - (H-T-B)*ya.frac(y) }
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`, L, T, W-L-R, H-T-B)
	for _, t := range xa.ticks() {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%s</text>`,
			px(t), T, px(t), H-B, px(t), H-B+14, tickLabel(t))
	}
	for _, t := range ya.ticks() {
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%s</text>`,
			L, py(t), W-R, py(t), L-4, py(t)+3, tickLabel(t))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="middle">%s</text>`, L+(W-L-R)/2, H-8, template.HTMLEscapeString(xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.0f" font-size="11" text-anchor="middle" transform="rotate(-90 14 %.0f)">%s</text>`, T+(H-T-B)/2, T+(H-T-B)/2, template.HTMLEscapeString(yLabel))
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts []string
		for _, p := range s.points {
			if (logX && p.x <= 0) || (logY && p.y <= 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
		}
		fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		for _, p := range pts {
			x, y, _ := strings.Cut(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, x, y, color)
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`,
			L+8, T+8+float64(i)*14, color, L+22, T+17+float64(i)*14, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axis maps values to [0, 1], linearly or by log10.
type axis struct {
	lo, hi float64
	log    bool
}

func newAxis(vs []float64, log, fromZero bool) axis {
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if log {
		lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
		if lo == hi {
			hi = lo * 10
		}
		return axis{lo, hi, true}
	}
	if fromZero && lo > 0 {
		lo = 0
	}
	if hi == lo {
		hi = lo + 1
	}
	return axis{lo, hi * 1.05, false}
}

func (a axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for v := a.lo; v <= a.hi*1.0001; v *= 10 {
			out = append(out, v)
		}
		return out
	}
	step := math.Pow(10, math.Floor(math.Log10((a.hi-a.lo)/4)))
	for (a.hi-a.lo)/step > 8 {
		step *= 2
	}
	for v := math.Ceil(a.lo/step) * step; v <= a.hi; v += step {
		out = append(out, v)
	}
	return out
}

func tickLabel(v float64) string {
	switch av := math.Abs(v); {
	case av >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case av >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	case av >= 1 || av == 0:
		return fmt.Sprintf("%g", math.Round(v*100)/100)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
