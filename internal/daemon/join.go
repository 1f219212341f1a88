package daemon

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/transport"
	"grapevine/member"
	"grapevine/wire"
)

// JoinError says why an invite was not redeemed. Reason is one of
// "mistyped", "not-an-invite", "malformed" (the code itself), "used",
// "expired", "unknown" (the inviter never issued it: forged, or from
// another node), "reserved" (another join holds its last use),
// "rate-limited" or "busy" (the inviter is limiting redemptions),
// "not-held" (the join took longer than ReserveTimeout), "unreachable"
// (no inviter answered), "wrong-grid" (the inviter is in another grid
// than the code's: declined, so the invite stays usable), "bad-reply"
// (the answer did not hold a valid chain for this grid).
type JoinError struct {
	Reason string
	Err    error
}

func (e *JoinError) Error() string {
	switch e.Reason {
	case "used":
		return "invite refused: it has already been used"
	case "expired":
		return "invite refused: it has expired"
	case "unknown":
		return "invite refused: the inviter never issued it (forged, or from another node)"
	case "reserved":
		return "invite refused: another join is using it now; if that one fails, it is free again within " + ReserveTimeout.String()
	case "rate-limited", "busy":
		return "invite refused: the inviter is limiting redemptions (" + e.Reason + "); try again in a minute"
	case "not-held":
		return "invite refused: the inviter no longer held it for this join (too slow); try again"
	}
	return fmt.Sprintf("invite %s: %v", e.Reason, e.Err)
}

func (e *JoinError) Unwrap() error { return e.Err }

// JoinOptions configures Join.
type JoinOptions struct {
	Code string
	Dir  string
	// Config is the new node's configuration; Join fills in the grid, the
	// membership chain and the inviter as bootstrap.
	Config  nodedir.Config
	Timeout time.Duration // for reaching the inviter; default 30 s
	Logger  *slog.Logger
	Now     func() time.Time
}

// Join redeems an invite code and creates the node directory: key,
// configuration with the certificate chain, the grid's revocations and its
// current live records in the peer book. It builds everything beside Dir
// and renames it into place, so a refused or failed join leaves nothing.
func Join(ctx context.Context, opt JoinOptions) (*nodedir.Node, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	inv, err := member.ParseInvite(opt.Code)
	if err != nil {
		var ie *member.InviteError
		if errors.As(err, &ie) {
			return nil, &JoinError{Reason: string(ie.Reason), Err: err}
		}
		return nil, &JoinError{Reason: "malformed", Err: err}
	}
	if entries, err := os.ReadDir(opt.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s: %w", opt.Dir, nodedir.ErrExists)
	}
	var rnd [6]byte
	crand.Read(rnd[:])
	tmp := opt.Dir + ".joining-" + hex.EncodeToString(rnd[:])
	nd, err := nodedir.Create(tmp, nodedir.Options{Config: opt.Config})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()

	reply, err := redeemAt(ctx, nd.Key, inv, opt.Timeout, opt.Logger, func(o wire.RedeemOffer) error { return checkOffer(inv, o) })
	if err != nil {
		return nil, err
	}
	if reply.Reason != "" {
		return nil, &JoinError{Reason: reply.Reason, Err: errors.New(reply.Reason)}
	}
	ch, err := member.ParseChain(reply.Chain)
	if err != nil || len(ch) == 0 {
		return nil, &JoinError{Reason: "bad-reply", Err: fmt.Errorf("certificate chain: %v", err)}
	}
	grid := ch[0].Issuer
	if !inv.Matches(grid) {
		return nil, &JoinError{Reason: "bad-reply", Err: fmt.Errorf("the chain is for grid %s, not the invite's", grid)}
	}
	if last := ch[len(ch)-1]; last.Issuer != inv.Inviter {
		return nil, &JoinError{Reason: "bad-reply", Err: fmt.Errorf("the last certificate was issued by %s, not the inviter %s", last.Issuer, inv.Inviter)}
	}
	if err := member.VerifyChain(grid, nd.ID(), ch, func(announce.NodeID, uint64) bool { return false }); err != nil {
		return nil, &JoinError{Reason: "bad-reply", Err: err}
	}

	cfg := *nd.Config
	cfg.Grid = string(grid)
	cfg.Membership = reply.Chain
	cfg.Bootstrap = append(cfg.Bootstrap, announce.Locator{ID: inv.Inviter, Addr: inv.Addr}.String())
	if err := nd.SaveConfig(&cfg); err != nil {
		return nil, err
	}
	pol, err := loadPolicy(tmp, grid)
	if err != nil {
		return nil, err
	}
	for _, s := range reply.Revocations {
		if r, err := member.ParseRevocation(s); err == nil {
			if added, _ := pol.set.Add(r); added {
				pol.dirty = true
			}
		}
	}
	if err := pol.save(tmp); err != nil {
		return nil, err
	}
	if len(reply.Records) > 0 {
		evs, err := Import(ctx, tmp, reply.Records, opt.Now())
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if e.Kind == core.EvRejected {
				opt.Logger.Info("join: record refused", "peer", string(e.Peer), "reason", e.Reason)
			}
		}
	}
	if err := os.Remove(opt.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tmp, opt.Dir); err != nil {
		return nil, err
	}
	ok = true
	return nodedir.Open(opt.Dir)
}

// checkOffer checks an inviter's offer against the code before the use is
// spent: its grid is the code's and its chain makes it a member.
func checkOffer(inv member.Invite, o wire.RedeemOffer) error {
	if !inv.Matches(o.Grid) {
		return &JoinError{Reason: "wrong-grid", Err: fmt.Errorf("the inviter is in grid %s, not the one the code names; declined, so the invite stays usable", o.Grid)}
	}
	ch, err := member.ParseChain(o.Chain)
	if err == nil {
		err = member.VerifyChain(o.Grid, inv.Inviter, ch, nil)
	}
	if err != nil {
		return &JoinError{Reason: "bad-reply", Err: fmt.Errorf("the inviter's own chain: %w; declined", err)}
	}
	return nil
}

// redeemAt connects to the inviter, proving key, and presents the secret.
// The inviter offers (holding one use) and check decides: accepted, the
// inviter spends the use and answers with the certificate; declined, the
// use stays with the invite. An inviter that answers the Redeem with a
// RedeemReply at once (before offers existed) is taken at its word.
func redeemAt(ctx context.Context, key announce.PrivateKey, inv member.Invite, timeout time.Duration, log *slog.Logger,
	check func(wire.RedeemOffer) error) (wire.RedeemReply, error) {
	tr, err := transport.Listen(transport.Options{Key: key, ListenAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		return wire.RedeemReply{}, err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	loc := announce.Locator{ID: inv.Inviter, Addr: inv.Addr}.String()
	tr.Dial(inv.Inviter, []string{loc}, timeout)
	for {
		select {
		case <-ctx.Done():
			return wire.RedeemReply{}, &JoinError{Reason: "unreachable", Err: fmt.Errorf("%s did not answer within %v", loc, timeout)}
		case in, ok := <-tr.Inputs():
			if !ok {
				return wire.RedeemReply{}, &JoinError{Reason: "unreachable", Err: errors.New("transport closed")}
			}
			switch in := in.(type) {
			case core.DialFailed:
				return wire.RedeemReply{}, &JoinError{Reason: "unreachable", Err: fmt.Errorf("%s: %s", loc, in.Err)}
			case core.Connected:
				tr.Send(inv.Inviter, wire.Redeem{Secret: inv.Secret})
			case core.Disconnected:
				return wire.RedeemReply{}, &JoinError{Reason: "unreachable", Err: fmt.Errorf("%s closed the connection: %s", loc, in.Err)}
			case core.Received:
				if in.From != inv.Inviter {
					continue
				}
				switch m := in.Msg.(type) {
				case wire.RedeemOffer:
					if err := check(m); err != nil {
						tr.Send(inv.Inviter, wire.RedeemConfirm{Accept: false})
						return wire.RedeemReply{}, err
					}
					tr.Send(inv.Inviter, wire.RedeemConfirm{Accept: true})
				case wire.RedeemReply:
					return m, nil
				}
			}
		}
	}
}

// joinedDirName is the default directory for grapevine join.
const joinedDirName = "grapevine-node"

// DefaultJoinDir is where grapevine join puts the node without a DIR.
func DefaultJoinDir() string { return filepath.Clean(joinedDirName) }
