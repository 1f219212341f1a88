package core_test

import (
	"strings"
	"testing"
)

// TestScenarioMistakes checks that the scenario runner cannot silently
// pass: a mistake in a script is an error naming its line, and a false
// check fails.
func TestScenarioMistakes(t *testing.T) {
	const setup = "server s[0:2] bootstrap=c0\nclient c0\nstart all\nrun 5s\n" // 4 lines
	mistakes := []struct{ script, want string }{
		{"run 10x", `:5: run 10x: time: unknown unit "x" in duration "10x"`},
		{"run 3xd", `:5: run 3xd: bad duration "3xd"`},
		{"run -1s", ":5: run -1s: run wants a positive duration"},
		{"run 1s 2s", ":5: run 1s 2s: usage: run DURATION"},
		{"frobnicate c0", `unknown command "frobnicate"`},
		{"holds c0 s[0:x]", `bad host range "s[0:x]"`},
		{"holds c0 s[2:1]", `bad host range "s[2:1]"`},
		{"holds c0 s[0:2", `bad host range "s[0:2"`},
		{"holds c0 s9", `no host "s9"`},
		{"holds c0,,s0 s1", "empty host name"},
		{"holds c0 s0 s1", "usage: holds HOSTS HOSTS"},
		{"max-dials c9 10", `no host "c9"`},
		{"dialed-before c9 s0 s1", `no host "c9"`},
		{"sources c0 s9 <= 5", `no host "s9"`},
		{"counter s0 => 1", `unsupported operator "=>"`},
		{"records c0 = 1", `unsupported operator "="`},
		{"max-dials c0 <= 10", `unsupported operator "<="`},
		{"holds c0 >= s0", `unsupported operator ">="`},
		{"!counter s0 >= 1", "unsupported: counter takes no '!'"},
		{"!max-dials c0 10", "unsupported: max-dials takes no '!'"},
		{"!run 1s", "unsupported: run takes no '!'"},
		{"records c0 <= ten", `bad number "ten"`},
		{"counter s0 >= 1.5", `bad number "1.5"`},
		{"counter s0 1", "usage: counter HOST OP N"},
		{"event c0 forgott", `no event kind "forgott"`},
		{"event c0 forgot s0 s1", "one PEER"},
		{"trace c0 dials", `no event kind "dials"`},
		{"config MaxRecords=ten", "config MaxRecords"},
		{"config DialServers=yes", "config DialServers"},
		{"config NoSuchField=1", "no config field NoSuchField"},
		{"server x bootstrap=typo", `:5: bootstrap "typo" is not a host`},
		{"server x nat=yes", `unknown option "nat=yes"`},
		{"client s0", `host "s0" defined twice`},
		{"wipe s0", "wipe s0: stop it first"},
		{"stop c0\nholds c0 s0", ":6: holds c0 s0: nothing checked"},
		{"stop s0\ncounter s0 >= 1", ":6: counter s0 >= 1: s0 is down"},
	}
	for _, m := range mistakes {
		out, err := runScenario("inline.txt", []byte(setup+m.script), nil, t.Logf)
		switch {
		case err == nil:
			t.Errorf("%q: no error (failed %q)", m.script, out.failed)
		case !strings.Contains(err.Error(), m.want):
			t.Errorf("%q: error %q, want it to contain %q", m.script, err, m.want)
		}
	}

	falseChecks := []string{"!holds c0 s0", "holds s0 c0\n!connected c0 s0", "records c0 < 0", "counter s0 == 0",
		"seqnum c0 s0 > 1000", "!current c0 s0", "event c0 forgot", "!event s0 published reason=start", "max-dials s0 0"}
	for _, script := range falseChecks {
		out, err := runScenario("inline.txt", []byte(setup+script), nil, t.Logf)
		if err != nil || out.failed == "" {
			t.Errorf("%q: want a failed check, got failed %q, error %v", script, out.failed, err)
		}
	}

	out, err := runScenario("inline.txt", []byte(setup+"holds c0 s[0:2]\ncounter s0 >= 1\nrecords c0 <= 10"), nil, t.Logf)
	if err != nil || out.failed != "" {
		t.Errorf("true checks: failed %q, error %v", out.failed, err)
	}
}
