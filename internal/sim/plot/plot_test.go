package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func normalChart() Chart {
	var a, b []Point
	for i := 0; i <= 20; i++ {
		x := float64(i) * 5
		a = append(a, Point{x, 1000 + 500*math.Sin(x/15)})
		b = append(b, Point{x, 12 * x})
	}
	return Chart{
		Title: "Delivery <latency> & more", XLabel: "time (s)", YLabel: "messages",
		Series: []Series{{Name: "sine", Points: a}, {Name: `a<b & "c"`, Points: b}},
	}
}

// edgeCharts covers degenerate inputs that must still render cleanly.
func edgeCharts() map[string]Chart {
	nan, inf := math.NaN(), math.Inf(1)
	return map[string]Chart{
		"empty":       {},
		"emptySeries": {Series: []Series{{Name: "nothing"}}},
		"singlePoint": {Series: []Series{{Name: "one", Points: []Point{{3, 4}}}}},
		"equalY":      {Series: []Series{{Name: "flat", Points: []Point{{0, 5}, {1, 5}, {2, 5}}}}},
		"zeroY":       {Series: []Series{{Name: "zero", Points: []Point{{0, 0}, {1, 0}}}}},
		"equalX":      {Series: []Series{{Name: "vertical", Points: []Point{{2, 1}, {2, 3}}}}},
		"negative":    {Series: []Series{{Name: "neg", Points: []Point{{0, -3}, {1, -3}}}}},
		"nonFinite": {Series: []Series{{Name: "bad", Points: []Point{
			{nan, 1}, {0, nan}, {1, inf}, {math.Inf(-1), 2}, {2, 7}, {3, 9}, {4, math.MaxFloat64}}}}},
		"allNonFinite": {Series: []Series{{Name: "allbad", Points: []Point{{nan, nan}, {inf, 1}}}}},
		"fixedRange":   {YMin: 0, YMax: 7, Series: []Series{{Name: "clip", Points: []Point{{0, -5}, {1, 3}, {2, 50}}}}},
		"badFixed":     {YMin: math.Inf(-1), YMax: inf, Series: []Series{{Name: "x", Points: []Point{{0, 1}, {1, 2}}}}},
		"tinySpan":     {Series: []Series{{Name: "tiny", Points: []Point{{1e10, 1}, {math.Nextafter(1e10, 2e10), 2}}}}},
		"tinySize":     {Width: 5, Height: 5, Series: []Series{{Name: "s", Points: []Point{{0, 1}, {1, 2}}}}},
		"manySeries": {Series: func() []Series {
			var ss []Series
			for i := range 10 {
				ss = append(ss, Series{Name: strings.Repeat("long name ", i), Points: []Point{{0, float64(i)}, {1, float64(i * i)}}})
			}
			return ss
		}()},
	}
}

// parse decodes every token of svg, returning the polyline count and all character data.
func parse(t *testing.T, svg []byte) (polylines int, text []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return polylines, text
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "svg" && tok.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg namespace = %q", tok.Name.Space)
			}
			if tok.Name.Local == "polyline" && len(tok.Attr) > 0 && tok.Attr[0].Name.Local == "clip-path" {
				polylines++ // series lines are the clipped ones; the axis polyline is not
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				text = append(text, s)
			}
		}
	}
}

func TestValidXMLAndContent(t *testing.T) {
	charts := edgeCharts()
	charts["normal"] = normalChart()
	for name, c := range charts {
		t.Run(name, func(t *testing.T) {
			svg := c.SVG()
			lines, text := parse(t, svg)
			want := 0
			for _, s := range c.Series {
				for _, p := range s.Points {
					if usable(p.X) && usable(p.Y) {
						want++
						break
					}
				}
				if !slices.Contains(text, strings.TrimSpace(legendName(s.Name))) && s.Name != "" {
					t.Errorf("legend lacks %q", s.Name)
				}
			}
			if lines != want {
				t.Errorf("got %d series polylines, want %d", lines, want)
			}
			if bytes.Contains(svg, []byte("NaN")) || bytes.Contains(svg, []byte("Inf")) {
				t.Errorf("output contains NaN/Inf:\n%s", svg)
			}
			if !bytes.Equal(svg, c.SVG()) {
				t.Error("output is not deterministic")
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	_, text := parse(t, normalChart().SVG())
	for _, want := range []string{`a<b & "c"`, "Delivery <latency> & more", "time (s)", "messages"} {
		if !slices.Contains(text, want) {
			t.Errorf("text %q not found in %q", want, text)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{0, 100, []float64{0, 20, 40, 60, 80, 100}},
		{0, 7, []float64{0, 2, 4, 6, 8}}, // covering rule: ticks extend past the data
		{0, 1, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{-3, 0, []float64{-3, -2.5, -2, -1.5, -1, -0.5, 0}},
		{3, 97, []float64{0, 20, 40, 60, 80, 100}},
		{0, 12345, []float64{0, 5000, 10000, 15000}},
	} {
		got := niceTicks(tc.lo, tc.hi)
		ok := len(got) == len(tc.want)
		for i := 0; ok && i < len(got); i++ {
			ok = math.Abs(got[i]-tc.want[i]) < 1e-9
		}
		if !ok {
			t.Errorf("niceTicks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 7: "7", 100: "100", -3: "-3", 0.25: "0.25", 0.1 + 0.2: "0.3",
		12000: "12k", 1500: "1.5k", 1234.5: "1.23k", 999.7: "1k", 2e6: "2M", 0.6000000000000001: "0.6",
	} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	c := normalChart()
	path := filepath.Join(t.TempDir(), "c.svg")
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, c.SVG()) {
		t.Fatalf("file content differs (err %v)", err)
	}
}
