package relay

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"

	"github.com/pion/stun/v3"

	"github.com/porthole-dev/porthole/turnserver/policy"
)

// pion/turn v4.1.4 gives its handlers no say over error codes: a refused
// AuthHandler becomes 400 Bad Request, a refused PermissionHandler an error
// response without ERROR-CODE for CreatePermission and 401 for ChannelBind.
// RFC 8489 §9.2.4 and RFC 8656 §9.1/§11.2 ask for 401 and 403 (443 for a
// family mismatch). The only seam pion leaves is the socket it reads and
// writes, so the relay fixes the codes there: it notes what it decided
// about each authenticated request on the way in (by transaction ID) and,
// when pion answers that transaction with its generic refusal, rewrites
// the response on the way out. pion still decides every outcome, in its own
// order (allocation present, nonce valid, credentials, policy); only the
// code and attributes of its refusal change. See README.md, "Answers".

// maxPendingVerdicts bounds the verdicts kept per socket or connection
// waiting for pion's response; a response always follows its request on
// the same loop, so a handful suffices and the oldest are dropped first.
const maxPendingVerdicts = 64

// maxObservedRequest is the largest request observed on a stream; larger
// ones (many XOR-PEER-ADDRESS attributes) pass with pion's own code.
const maxObservedRequest = 4096

type verdict struct {
	method stun.Method
	code   stun.ErrorCode
	key    []byte     // long-term key for MESSAGE-INTEGRITY; nil for a 401
	nonce  stun.Nonce // echoed in a 401: pion has validated it by then
}

// answers keeps the verdicts of one listener socket or stream connection.
type answers struct {
	srv     *Server
	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]verdict
	order   [][stun.TransactionIDSize]byte
}

func newAnswers(s *Server) *answers {
	return &answers{srv: s, pending: map[[stun.TransactionIDSize]byte]verdict{}}
}

const magicCookie = 0x2112A442 // RFC 8489 §5

// isSTUN reports whether b starts like a STUN message of class cls.
func isSTUN(b []byte, cls stun.MessageClass) bool {
	if len(b) < 20 || b[0]&0xc0 != 0 || binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	c := stun.MessageClass(((t >> 4) & 0x1) | ((t >> 7) & 0x2))
	return c == cls
}

// observe notes the relay's own verdict on a request pion is about to
// handle. It never changes what pion reads.
func (a *answers) observe(b []byte) {
	if !isSTUN(b, stun.ClassRequest) {
		return
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return
	}
	switch m.Type.Method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return
	}
	var (
		user  stun.Username
		realm stun.Realm
		nonce stun.Nonce
	)
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		return // pion answers 400, rightly
	}
	v := verdict{method: m.Type.Method}
	key, reason := a.srv.credentialKey(user.String(), realm.String())
	if reason != "" || stun.MessageIntegrity(key).Check(m) != nil {
		v.code, v.nonce = stun.CodeUnauthorized, nonce
		a.put(m.TransactionID, v)
		return
	}
	if v.method != stun.MethodCreatePermission && v.method != stun.MethodChannelBind {
		return
	}
	v.key = key
	_ = m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
		var peer stun.XORMappedAddress
		if err := peer.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return err
		}
		ip, ok := netip.AddrFromSlice(peer.IP)
		if !ok {
			return nil
		}
		switch err := a.srv.policy.CheckIP(a.srv.cfg.PublicIP, ip); {
		case errors.Is(err, policy.ErrFamilyMismatch):
			v.code = stun.CodePeerAddrFamilyMismatch
		case err != nil && v.code == 0:
			v.code = stun.CodeForbidden
		}
		return nil
	})
	if v.code != 0 {
		a.put(m.TransactionID, v)
	}
}

func (a *answers) put(id [stun.TransactionIDSize]byte, v verdict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[id]; !ok {
		a.order = append(a.order, id)
	}
	a.pending[id] = v
	for len(a.order) > maxPendingVerdicts {
		delete(a.pending, a.order[0])
		a.order = a.order[1:]
	}
}

func (a *answers) take(id [stun.TransactionIDSize]byte) (verdict, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.pending[id]
	if ok {
		delete(a.pending, id)
	}
	return v, ok
}

// fix returns the response to send in place of b: b itself unless it is
// pion's generic refusal of a request the relay refused for a reason with
// a code of its own.
func (a *answers) fix(b []byte) []byte {
	if !isSTUN(b, stun.ClassErrorResponse) {
		return b
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return b
	}
	v, ok := a.take(m.TransactionID)
	if !ok || v.method != m.Type.Method {
		return b
	}
	var ec stun.ErrorCodeAttribute
	hasCode := ec.GetFrom(m) == nil
	var setters []stun.Setter
	switch {
	case v.code == stun.CodeUnauthorized && hasCode && ec.Code == stun.CodeBadRequest:
		// pion's refusal of the credentials: a fresh challenge instead.
		setters = []stun.Setter{stun.CodeUnauthorized, stun.NewRealm(a.srv.cfg.Realm), v.nonce}
	case v.method == stun.MethodCreatePermission && v.key != nil && !hasCode,
		v.method == stun.MethodChannelBind && v.key != nil && hasCode && ec.Code == stun.CodeUnauthorized:
		setters = []stun.Setter{v.code, stun.MessageIntegrity(v.key)}
	default:
		return b
	}
	out, err := stun.Build(append([]stun.Setter{&stun.Message{TransactionID: m.TransactionID}, m.Type}, setters...)...)
	if err != nil {
		return b
	}
	return out.Raw
}

// streamObserver finds the STUN requests in a TURN-over-TCP byte stream
// (RFC 8656 §12.5: STUN messages and ChannelData padded to 4 bytes) and
// hands them to observe, without changing what the reader gets.
type streamObserver struct {
	a    *answers
	buf  []byte
	skip int // bytes of a frame not worth observing, still to pass
}

func (o *streamObserver) feed(p []byte) {
	for len(p) > 0 {
		if o.skip > 0 {
			n := min(o.skip, len(p))
			o.skip -= n
			p = p[n:]
			continue
		}
		need := 4
		if len(o.buf) >= 4 {
			need = frameLen(o.buf)
		}
		n := min(need-len(o.buf), len(p))
		o.buf = append(o.buf, p[:n]...)
		p = p[n:]
		if len(o.buf) < need {
			continue
		}
		if need == 4 {
			full := frameLen(o.buf)
			if full > maxObservedRequest || o.buf[0]&0xc0 != 0 {
				// ChannelData or an oversized message: pass it unobserved.
				o.skip = full - 4
				o.buf = o.buf[:0]
			}
			continue
		}
		o.a.observe(o.buf)
		o.buf = o.buf[:0]
	}
}

// frameLen is the length on the wire of the frame whose first 4 bytes are b.
func frameLen(b []byte) int {
	l := int(binary.BigEndian.Uint16(b[2:4]))
	if b[0]&0xc0 == 0 {
		return 20 + l // STUN: the header is 20 bytes
	}
	return 4 + (l+3)&^3 // ChannelData, padded over streams
}
