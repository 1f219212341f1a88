// Package member is grid membership for Grapevine (closed grids, docs/grid.md): certificate
// chains that prove a node belongs to a closed grid, revocations that take
// membership back, and the invite codes people pass on to let a new node
// in. It is pure: no I/O, no clock, no global state; randomness comes from
// the caller's io.Reader.
//
// # Trust
//
// A grid is named by its founder's node ID, and the founder's key is the
// only thing a node trusts from the start. A certificate (Cert) is a
// statement signed by its Issuer: "Subject belongs to Grid". A member
// holds a chain: the founder's certificate for the first member, that
// member's for the next, and so on to the member itself. VerifyChain
// accepts the chain when the first certificate is the founder's, each
// next one is signed by the previous one's subject, all name the grid,
// and none is revoked. By induction the chain proves membership: the first
// subject was admitted by the founder (nobody else can make the founder's
// signature), and each further subject was admitted by someone already
// shown to be a member. Membership is being reachable from the founder
// along signed certificates; to let a member invite is to let it admit.
//
// A chain is self-contained: the grid ID, the chain and the known
// revocations decide, with no directory to ask and nobody online. It is
// also public: it proves the membership of whoever holds the subject's
// key, so the verifier must also see that key proved (the connection's
// handshake, a signed record). Every certificate names its grid and every
// signature is over a domain string of its own, so a certificate cannot
// be replayed into another grid where its issuer is also a member, nor a
// revocation passed off as a certificate. Chains are at most MaxDepth
// certificates long, which bounds the work of a check.
//
// # Revocation
//
// A Revocation names a certificate by its issuer and serial and is signed
// by that issuer; nobody else can revoke a certificate. Every chain below
// the certificate contains it, so revoking it cuts off the whole subtree:
// the subject, and everyone the subject admitted, directly or not,
// including by certificates issued before the revocation. A member that
// should stay needs a new certificate from a member outside the subtree.
//
// What revocation cannot do:
//   - Revoke a node: it revokes a certificate. A node admitted twice (two
//     inviters) stays a member until both certificates are revoked.
//   - Reach past the issuer: the founder cannot revoke a certificate its
//     member issued except by revoking that member's, with its subtree.
//   - Take effect everywhere at once: it spreads by gossip, and a node
//     that has not heard of it still accepts the chain. Nothing tells when
//     every node has heard.
//   - Be undone: re-admission is a new certificate with a new serial. An
//     issuer that reuses a serial revokes every certificate with it.
//   - Take back what a member already received, or recover from a stolen
//     key: a thief of a member's key admits whom it likes until the
//     member's certificate is revoked, and a thief of the founder's key
//     owns the grid.
//
// Certificates carry no expiry, nor any other time. A time in a
// certificate would be judged by the verifier's clock against the
// issuer's, and no decision of Grapevine depends on another node's clock.
// A certificate holds until revoked. Invites do expire, but only at the
// inviter, which keeps its pending invites on its own clock (the daemon),
// so the code carries no time either.
//
// Anyone can sign a revocation of a certificate it made up, so a
// RevocationSet holds at most a fixed number, and callers add only
// revocations whose issuer is a member.
//
// # Invites
//
// An invite code carries the inviter's address and node ID (the invitee
// dials the address and requires that key), the first 10 bytes of the
// founder's key (the invitee checks the grid ID the inviter tells it, and
// the inviter's chain for that grid), and a 16-byte random secret the
// invitee presents to be admitted. The inviter need not keep the secret:
// it stores ID and HashSecret, finds the pending invite a presented secret
// redeems by SecretID, and checks it with SecretMatches. A 4-byte checksum
// tells a mistyped code from a forged one: ParseInvite reports
// ReasonMistyped for the first, ReasonMalformed for the second.
//
// # Encodings
//
// Integers are big-endian. An id is a node ID's 32 raw ed25519 public-key
// bytes. Every binary form starts with a version byte (1). Text forms are
// a prefix and then RFC 4648 base32 in lower case without padding
// (announce.EncodeBase32).
//
// A certificate is 169 bytes; its text form, "gvc1-" + base32, is
// CertTextLen (276) characters:
//
//	off  len  field
//	  0    1  version (1)
//	  1   32  grid id
//	 33   32  issuer id
//	 65   32  subject id
//	 97    8  serial u64
//	105   64  signature: ed25519 by the issuer of
//	          "grapevine-cert-v1\x00" | bytes 1-104
//
// A revocation is 169 bytes; its text form, "gvr1-" + base32, is
// RevocationTextLen (276) characters:
//
//	off  len  field
//	  0    1  version (1)
//	  1   32  grid id
//	 33   32  issuer id (of the revoked certificate, and of this)
//	 65    8  serial u64 (of the revoked certificate)
//	 73   32  subject id (of the revoked certificate)
//	105   64  signature: ed25519 by the issuer of
//	          "grapevine-revocation-v1\x00" | bytes 1-104
//
// Parsing is strict: the text must be the canonical encoding of exactly
// 169 bytes, in lower case, with a valid signature, so that every
// certificate and revocation has one spelling and ParseCert(c.String())
// returns c.
//
// An invite code is 64 + n bytes for an address of n bytes (1 ≤ n ≤ 255):
//
//	off     len  field
//	  0       1  version (1)
//	  1      10  grid prefix: bytes 0-9 of the founder's public key
//	 11      32  inviter id
//	 43       1  n
//	 44       n  address, host:port (announce.CheckHostPort)
//	 44+n    16  secret
//	 60+n     4  checksum: bytes 0-3 of SHA-256 of bytes 0 to 59+n
//
// Its text is "gv1-" and the base32 in groups of five characters joined
// by '-': 157 characters for a 16-byte address such as 203.0.113.7:7370.
// ParseInvite is lenient where people err (case, separators, 0/1/8 for
// o/l/b) and strict about everything else.
package member
