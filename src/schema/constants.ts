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
