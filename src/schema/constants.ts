/** Protocol constants of the direct sync protocol (spec 04). */

/** libp2p protocol id of a sync session: the reference's ALPN, kept as is (spec 04 §2). */
export const SYNC_PROTOCOL = "/iroh-sync/1"

/** Largest frame payload the protocol allows: 1 GiB (spec 04 §3). */
export const MAX_MESSAGE_SIZE = 1024 * 1024 * 1024

/**
 * Our default decoder limit on a frame payload: 64 MiB (spec 04 §3 suggests making the decoder limit configurable).
 * Well above the 4 MiB `maxMessageBytes` budget of the default reconcile config (src/internal/reconcile.ts), so
 * only a peer without a budget (reference mode, or the reference implementation) can reach it.
 */
export const DEFAULT_MAX_FRAME = 64 * 1024 * 1024

/**
 * libp2p protocol id of the membership exchange (issue 15 "Membership"; spec 05 §15 leaves the mechanism open): one
 * request and one response per stream, each one frame of at most `MAX_EXCHANGE_MESSAGE_SIZE` bytes
 * (src/schema/PeerRecord.ts).
 */
export const MEMBERS_PROTOCOL = "/rangedocs/members/1"

// ---------------------------------------------------------------------------------------------------------------
// Bounds on what a peer (or a user) can make us decode, store or process (issue 15, finding 6). Each is checked where
// the bytes are read, before anything large is built; above it the input is refused with a typed error.

/**
 * Longest entry key, in bytes: 8 KiB. Checked by every path that accepts an entry — local insert and remote
 * validation (`validateEntry`, `KeyTooLong`), and the entry decoder used by sync and gossip (refused while decoding).
 * Keys are names (paths, ids): our tests, benches and examples use keys under 100 bytes, and a key is sent in every
 * range bound that ends at it, so long keys cost on every sync.
 */
export const MAX_KEY_LENGTH = 8 * 1024

/**
 * Parts (fingerprints and items) in one `Init`'s reconciliation message: 16. An initiator sends exactly one
 * fingerprint over the whole set (spec 02 §5, spec 04 §4.4); the rest is slack. An `Init` is read before the accept
 * decision, so it must be cheap: the issue's 200k-range `Init` is refused at its part count.
 */
export const MAX_INIT_PARTS = 16

/**
 * Payload bytes of the first frame an acceptor reads (the `Init`): 512 KiB, checked at its length prefix, so that a
 * peer we have not accepted yet cannot make us buffer up to the frame limit (64 MiB). An honest Init is about 200
 * bytes; `MAX_INIT_PARTS` parts with bounds of the longest keys take 16 × (2 × (2 + 64 + 8,192) + 33) ≈ 265 KB.
 */
export const MAX_INIT_SIZE = 512 * 1024

/**
 * Parts in one reconciliation message: 262,144. Our default mode keeps a message within 4 MiB, at least 163 bytes
 * per part, so at most ~26k parts (10× headroom). Reference mode (no budget) sent at most 29,519 parts in one message
 * at 100k entries / 10 % (`npm run bench -- reconcile --mode reference --verbose`); its largest message grows with
 * the number of differences, so 1M / 1 % (as many differences) fits with the same headroom, while 1M / 10 % (about
 * ten times more, ~60 MB messages) is already at the 64 MiB frame limit and needs a larger `maxFrame` anyway.
 * Processing costs up to ~50 µs and ~1.5 KB per part, so one message costs at most ~13 s / ~380 MB even when hostile;
 * the message before the accept decision (`Init`) is bounded far lower, by `MAX_INIT_PARTS`.
 */
export const MAX_PARTS = 1 << 18

/**
 * Values (entries) in one reconciliation message: 524,288. Default mode sends values within 1 MiB per message (about
 * 4k entries); reference mode sends a whole range at once, up to what the 64 MiB frame holds: an encoded value takes
 * at least 227 bytes, so ≤ ~295k. This bound only keeps a large frame limit (`maxFrame`) from growing it further.
 */
export const MAX_VALUES = 1 << 19

/**
 * Forged values (bad signature, foreign namespace) one session tolerates before it ends with `TooManyInvalidEntries`
 * (spec 02 §5: invalid values are dropped, counted and the session goes on): more than 1,000 in all, or more than half
 * of the values received once at least 100 arrived. An honest peer verifies both before it stores a value, so it never
 * sends one. The other invalid values (timestamp > 10 min ahead, empty/len mismatch, key too long) are dropped and
 * counted but never count here: a third party can plant them on an honest peer (a timestamp at the edge of that
 * peer's horizon, which ours may not reach when our clock lags; a mismatch or a long key a reference peer accepts),
 * and must not be able to make us cut and cool down that peer.
 */
export const MAX_INVALID_PER_SESSION = 1000
export const MAX_INVALID_FRACTION = 0.5
export const MIN_VALUES_FOR_INVALID_FRACTION = 100

/**
 * How long a peer whose session ended with `TooManyInvalidEntries` is cooled down: no session with it is started or
 * accepted for 10 minutes. At most `MAX_COOLED_PEERS` (4,096) peers are remembered (the soonest to expire go first).
 */
export const INVALID_PEER_COOLDOWN_MS = 10 * 60 * 1000
export const MAX_COOLED_PEERS = 4096
