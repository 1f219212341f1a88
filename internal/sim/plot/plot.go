// Package plot writes simple, dependency-free SVG line charts for simulator reports.
package plot

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Series is one named line on a chart.
type Series struct {
	Name   string
	Points []Point // X ascending
}

// Point is one data point.
type Point struct{ X, Y float64 }

// Chart describes a line chart; render it with SVG or WriteFile.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// Optional fixed Y range; if YMax <= YMin the range is computed from the data (YMin 0 unless data is negative).
	YMin, YMax    float64
	Width, Height int // pixels; 0 means 720x360
}

// palette is the Okabe-Ito colorblind-friendly palette (yellow left out: too faint on white).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"}

const maxNameRunes = 24 // longer legend names are truncated

// usable reports whether v can be plotted; huge values are rejected so spans stay finite.
func usable(v float64) bool { return !math.IsNaN(v) && math.Abs(v) <= math.MaxFloat64/4 }

// WriteFile writes the chart's SVG to path.
func (c Chart) WriteFile(path string) error { return os.WriteFile(path, c.SVG(), 0o644) }

// SVG renders the chart as a standalone SVG 1.1 document.
func (c Chart) SVG() []byte {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 720
	}
	if h <= 0 {
		h = 360
	}

	// Keep only plottable points; gather data bounds.
	series := make([][]Point, len(c.Series))
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	maxName := 0
	for i, s := range c.Series {
		for _, p := range s.Points {
			if usable(p.X) && usable(p.Y) {
				series[i] = append(series[i], p)
				xlo, xhi = math.Min(xlo, p.X), math.Max(xhi, p.X)
				ylo, yhi = math.Min(ylo, p.Y), math.Max(yhi, p.Y)
			}
		}
		maxName = max(maxName, len([]rune(legendName(s.Name))))
	}
	if xlo > xhi { // no data at all
		xlo, xhi, ylo, yhi = 0, 1, 0, 1
	}

	// Axis ranges: X expands to nice ticks; Y is fixed or includes 0 and expands to nice ticks.
	xlo, xhi = widen(xlo, xhi)
	xt := niceTicks(xlo, xhi)
	xlo, xhi = xt[0], xt[len(xt)-1]
	var yt []float64
	if c.YMax > c.YMin && usable(c.YMin) && usable(c.YMax) {
		ylo, yhi = widen(c.YMin, c.YMax)
		for _, t := range niceTicks(ylo, yhi) {
			if eps := (yhi - ylo) * 1e-9; t >= ylo-eps && t <= yhi+eps {
				yt = append(yt, t)
			}
		}
	} else {
		ylo, yhi = math.Min(0, ylo), math.Max(0, yhi)
		if ylo == 0 && yhi == 0 {
			yhi = 1
		}
		ylo, yhi = widen(ylo, yhi)
		yt = niceTicks(ylo, yhi)
		ylo, yhi = yt[0], yt[len(yt)-1]
	}

	// Layout: legend on the right, sized to the longest name.
	left, top, bottom, right := 76.0, 40.0, 55.0, 20.0
	if len(c.Series) > 0 {
		right = 50 + 7*float64(maxName)
	}
	pw, ph := math.Max(float64(w)-left-right, 10), math.Max(float64(h)-top-bottom, 10)
	px := func(x float64) float64 { return left + (x-xlo)/(xhi-xlo)*pw }
	py := func(y float64) float64 { return top + ph - (y-ylo)/(yhi-ylo)*ph }

	var b bytes.Buffer
	f := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	f("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	f("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", w, h, w, h)
	f("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n")
	// The clip area has a small margin so lines along the plot edges are not cut in half.
	f("<defs><clipPath id=\"area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n", left-4, top-4, pw+8, ph+8)
	f("<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", left+pw/2, esc(c.Title))

	// Grid, ticks and tick labels.
	for _, t := range yt {
		y := py(t)
		f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left+pw, y)
		f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left-6, y+4, esc(formatNum(t)))
	}
	for _, t := range xt {
		x := px(t)
		f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x, top+ph, x, top+ph+5)
		f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, top+ph+18, esc(formatNum(t)))
	}
	f("<polyline points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"none\" stroke=\"black\"/>\n", left, top, left, top+ph, left+pw, top+ph)
	f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", left+pw/2, float64(h)-10, esc(c.XLabel))
	f("<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">%s</text>\n", top+ph/2, top+ph/2, esc(c.YLabel))

	// Series lines (clipped to the plot area) and legend entries.
	for i, s := range c.Series {
		color := palette[i%len(palette)]
		if pts := series[i]; len(pts) > 0 {
			f("<polyline clip-path=\"url(#area)\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"", color)
			for j, p := range pts {
				if j > 0 {
					b.WriteByte(' ')
				}
				f("%.1f,%.1f", px(p.X), py(p.Y))
			}
			f("\"/>\n")
			if len(pts) == 1 { // a lone point draws no line; mark it
				f("<circle clip-path=\"url(#area)\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(pts[0].X), py(pts[0].Y), color)
			}
		}
		lx, ly := left+pw+15, top+10+18*float64(i)
		f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", lx, ly, lx+20, ly, color)
		f("<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx+26, ly+4, esc(legendName(s.Name)))
	}
	f("</svg>\n")
	return b.Bytes()
}

// widen gives a degenerate (or precision-starved) range some room around its middle.
func widen(lo, hi float64) (float64, float64) {
	if hi-lo > 1e-9*math.Max(math.Abs(lo), math.Abs(hi)) {
		return lo, hi
	}
	mid := lo/2 + hi/2
	d := math.Max(1, math.Abs(mid)/10)
	return mid - d, mid + d
}

// niceTicks returns evenly spaced ticks covering [lo, hi] (lo < hi) with the
// smallest step of 1, 2 or 5 x 10^k that needs at most 6 intervals.
func niceTicks(lo, hi float64) []float64 {
	mag := math.Pow(10, math.Floor(math.Log10((hi-lo)/6)))
	var step, a, n float64
	for _, m := range []float64{1, 2, 5, 10, 20, 50} {
		step = m * mag
		a = math.Floor(lo/step + 1e-9)
		n = math.Ceil(hi/step-1e-9) - a
		if n <= 6 {
			break
		}
	}
	ticks := make([]float64, 0, int(n)+1)
	for k := 0.0; k <= n; k++ {
		ticks = append(ticks, (a+k)*step)
	}
	return ticks
}

// formatNum formats v compactly: at most 3 significant digits, k/M/G/T suffixes for large values.
func formatNum(v float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64) // round to 3 significant digits
	if r == 0 {
		return "0" // also avoids "-0"
	}
	for _, u := range []struct {
		scale  float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(r) >= u.scale && math.Abs(r) < 1000*u.scale {
			return strconv.FormatFloat(r/u.scale, 'g', 3, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
}

// legendName truncates long series names for the legend.
func legendName(s string) string {
	if r := []rune(s); len(r) > maxNameRunes {
		return string(r[:maxNameRunes-1]) + "…"
	}
	return s
}

// esc escapes s for XML text content.
func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
