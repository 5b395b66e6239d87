package iscsiwire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KV is one key=value pair of a text or login data segment (§6.1).
type KV struct{ Key, Value string }

// Key limits (§6.1): a key name up to 63 bytes; a value up to 255 bytes,
// except the few keys allowed 8192 (CHAP_C / CHAP_R large binary values
// and TargetAlias-like texts): we accept up to 8192 everywhere.
const (
	MaxKeyLen   = 63
	MaxValueLen = 8192
)

// ErrText is matched by every malformed text segment error.
var ErrText = errors.New("malformed iSCSI text")

// ParseText splits a data segment into key=value pairs, in order. Each
// pair ends with a NUL; the last NUL may be missing only when a text is
// cut for a Continue (the caller then joins segments first).
func ParseText(data []byte) ([]KV, error) {
	var kvs []KV
	s := string(data)
	for len(s) > 0 {
		i := strings.IndexByte(s, 0)
		var pair string
		if i < 0 {
			pair, s = s, ""
		} else {
			pair, s = s[:i], s[i+1:]
		}
		if pair == "" {
			continue // padding NULs
		}
		k, v, ok := strings.Cut(pair, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: %q has no '='", ErrText, trunc(pair))
		case k == "" || len(k) > MaxKeyLen:
			return nil, fmt.Errorf("%w: key %q is empty or longer than %d bytes", ErrText, trunc(k), MaxKeyLen)
		case len(v) > MaxValueLen:
			return nil, fmt.Errorf("%w: value of %s is longer than %d bytes", ErrText, k, MaxValueLen)
		}
		kvs = append(kvs, KV{k, v})
	}
	return kvs, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// AppendText appends pairs in wire form (key=value NUL).
func AppendText(dst []byte, kvs ...KV) []byte {
	for _, kv := range kvs {
		dst = append(dst, kv.Key...)
		dst = append(dst, '=')
		dst = append(dst, kv.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// Lookup returns the value of key in kvs.
func Lookup(kvs []KV, key string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Special values (§6.2).
const (
	NotUnderstood = "NotUnderstood"
	Irrelevant    = "Irrelevant"
	RejectValue   = "Reject"
)

// Params are a connection's and session's operational parameters (§13),
// with RFC defaults from DefaultParams.
type Params struct {
	HeaderDigest, DataDigest bool // CRC32C, else None
	// MaxRecvDataSegmentLength is declarative: each side states the
	// largest data segment it receives. In a negotiated Params it is the
	// value the *peer* declared (what this side may send).
	MaxRecvDataSegmentLength int
	MaxBurstLength           int
	FirstBurstLength         int
	InitialR2T               bool
	ImmediateData            bool
	MaxConnections           int
	MaxOutstandingR2T        int
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	ErrorRecoveryLevel       int
	DefaultTime2Wait         int
	DefaultTime2Retain       int
}

// DefaultParams are RFC 7143's defaults: what is in effect for a key
// neither side negotiated.
func DefaultParams() Params {
	return Params{
		MaxRecvDataSegmentLength: 8192, MaxBurstLength: 262144, FirstBurstLength: 65536,
		InitialR2T: true, ImmediateData: true, MaxConnections: 1, MaxOutstandingR2T: 1,
		DataPDUInOrder: true, DataSequenceInOrder: true, ErrorRecoveryLevel: 0,
		DefaultTime2Wait: 2, DefaultTime2Retain: 20,
	}
}

type rule uint8

const (
	ruleList rule = iota + 1 // the responder picks the first offered value it supports
	ruleMin                  // numeric, result = min
	ruleMax                  // numeric, result = max
	ruleAnd                  // boolean, Yes only if both say Yes
	ruleOr                   // boolean, Yes if either says Yes
	ruleDecl                 // declarative: no negotiation
)

type keyRule struct {
	r      rule
	lo, hi int
	lists  []string
}

var opRules = map[string]keyRule{
	"HeaderDigest":             {r: ruleList, lists: []string{"None", "CRC32C"}},
	"DataDigest":               {r: ruleList, lists: []string{"None", "CRC32C"}},
	"MaxConnections":           {r: ruleMin, lo: 1, hi: 65535},
	"InitialR2T":               {r: ruleOr},
	"ImmediateData":            {r: ruleAnd},
	"MaxRecvDataSegmentLength": {r: ruleDecl, lo: 512, hi: 1<<24 - 1},
	"MaxBurstLength":           {r: ruleMin, lo: 512, hi: 1<<24 - 1},
	"FirstBurstLength":         {r: ruleMin, lo: 512, hi: 1<<24 - 1},
	"DefaultTime2Wait":         {r: ruleMax, lo: 0, hi: 3600},
	"DefaultTime2Retain":       {r: ruleMin, lo: 0, hi: 3600},
	"MaxOutstandingR2T":        {r: ruleMin, lo: 1, hi: 65535},
	"DataPDUInOrder":           {r: ruleOr},
	"DataSequenceInOrder":      {r: ruleOr},
	"ErrorRecoveryLevel":       {r: ruleMin, lo: 0, hi: 2},
}

// IsOperational reports whether key is one of the operational keys
// Negotiate and Params.Set know.
func IsOperational(key string) bool { _, ok := opRules[key]; return ok }

// Negotiate answers one offered operational key as the responder: mine is
// what the responder supports or wants (a list for list keys, a number,
// Yes/No). The answer is also the negotiated value, except for the
// declarative MaxRecvDataSegmentLength, where the answer is mine and the
// offered value is the peer's declaration. An unknown key answers
// NotUnderstood; a value out of range is an error naming it.
func Negotiate(key, offered, mine string) (string, error) {
	kr, ok := opRules[key]
	if !ok {
		return NotUnderstood, nil
	}
	switch kr.r {
	case ruleList:
		supported := strings.Split(mine, ",")
		for _, o := range strings.Split(offered, ",") {
			for _, s := range supported {
				if o == s {
					return o, nil
				}
			}
		}
		return RejectValue, nil
	case ruleAnd, ruleOr:
		a, err := yesNo(key, offered)
		if err != nil {
			return "", err
		}
		b, err := yesNo(key, mine)
		if err != nil {
			return "", err
		}
		if kr.r == ruleAnd {
			return boolText(a && b), nil
		}
		return boolText(a || b), nil
	case ruleMin, ruleMax, ruleDecl:
		a, err := number(key, offered, kr)
		if err != nil {
			return "", err
		}
		b, err := number(key, mine, kr)
		if err != nil {
			return "", err
		}
		switch kr.r {
		case ruleMin:
			return strconv.Itoa(min(a, b)), nil
		case ruleMax:
			return strconv.Itoa(max(a, b)), nil
		}
		return strconv.Itoa(b), nil
	}
	return NotUnderstood, nil
}

// Check verifies, as the originator, that a responder's answer to a key
// it offered obeys the key's rule (a list answer it offered, a minimum not
// above its offer …); it returns the negotiated value.
func Check(key, offered, answer string) (string, error) {
	kr, ok := opRules[key]
	if !ok {
		return answer, nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("iSCSI negotiation: %s=%s answered to our %s: %s", key, answer, offered, why)
	}
	switch answer {
	case RejectValue, NotUnderstood:
		return bad("refused")
	case Irrelevant:
		return offered, nil
	}
	switch kr.r {
	case ruleList:
		for _, o := range strings.Split(offered, ",") {
			if o == answer {
				return answer, nil
			}
		}
		return bad("not one of the values offered")
	case ruleAnd, ruleOr:
		a, err := yesNo(key, answer)
		if err != nil {
			return "", err
		}
		o, err := yesNo(key, offered)
		if err != nil {
			return "", err
		}
		if kr.r == ruleAnd && a && !o {
			return bad("Yes is not allowed when we offered No")
		}
		if kr.r == ruleOr && !a && o {
			return bad("No is not allowed when we offered Yes")
		}
		return answer, nil
	case ruleMin, ruleMax:
		a, err := number(key, answer, kr)
		if err != nil {
			return "", err
		}
		o, err := number(key, offered, kr)
		if err != nil {
			return "", err
		}
		if kr.r == ruleMin && a > o || kr.r == ruleMax && a < o {
			return bad("outside the rule of the key")
		}
		return answer, nil
	}
	// Declarative: the peer's own declaration.
	if _, err := number(key, answer, kr); err != nil {
		return "", err
	}
	return answer, nil
}

func yesNo(key, v string) (bool, error) {
	switch v {
	case "Yes":
		return true, nil
	case "No":
		return false, nil
	}
	return false, fmt.Errorf("iSCSI negotiation: %s=%q is neither Yes nor No", key, trunc(v))
}

func boolText(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func number(key, v string, kr keyRule) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < kr.lo || n > kr.hi {
		return 0, fmt.Errorf("iSCSI negotiation: %s=%q is not a number in %d..%d", key, trunc(v), kr.lo, kr.hi)
	}
	return n, nil
}

// Set stores a negotiated value of an operational key.
func (p *Params) Set(key, value string) error {
	kr, ok := opRules[key]
	if !ok {
		return fmt.Errorf("iSCSI negotiation: %s is not an operational key", key)
	}
	switch kr.r {
	case ruleList:
		switch value {
		case "None", "CRC32C":
		default:
			return fmt.Errorf("iSCSI negotiation: %s=%q is not None or CRC32C", key, trunc(value))
		}
		if key == "HeaderDigest" {
			p.HeaderDigest = value == "CRC32C"
		} else {
			p.DataDigest = value == "CRC32C"
		}
		return nil
	case ruleAnd, ruleOr:
		b, err := yesNo(key, value)
		if err != nil {
			return err
		}
		switch key {
		case "InitialR2T":
			p.InitialR2T = b
		case "ImmediateData":
			p.ImmediateData = b
		case "DataPDUInOrder":
			p.DataPDUInOrder = b
		case "DataSequenceInOrder":
			p.DataSequenceInOrder = b
		}
		return nil
	}
	n, err := number(key, value, kr)
	if err != nil {
		return err
	}
	switch key {
	case "MaxConnections":
		p.MaxConnections = n
	case "MaxRecvDataSegmentLength":
		p.MaxRecvDataSegmentLength = n
	case "MaxBurstLength":
		p.MaxBurstLength = n
	case "FirstBurstLength":
		p.FirstBurstLength = n
	case "DefaultTime2Wait":
		p.DefaultTime2Wait = n
	case "DefaultTime2Retain":
		p.DefaultTime2Retain = n
	case "MaxOutstandingR2T":
		p.MaxOutstandingR2T = n
	case "ErrorRecoveryLevel":
		p.ErrorRecoveryLevel = n
	}
	return nil
}

// Digest is the list-key value of a digest setting.
func Digest(on bool) string {
	if on {
		return "CRC32C"
	}
	return "None"
}

// Offer is p as the key=value pairs an originator offers (in a fixed
// order), with digests as preference lists: "CRC32C,None" when wanted,
// "None" when not.
func (p Params) Offer() []KV {
	dig := func(on bool) string {
		if on {
			return "CRC32C,None"
		}
		return "None"
	}
	return []KV{
		{"HeaderDigest", dig(p.HeaderDigest)},
		{"DataDigest", dig(p.DataDigest)},
		{"ErrorRecoveryLevel", strconv.Itoa(p.ErrorRecoveryLevel)},
		{"InitialR2T", boolText(p.InitialR2T)},
		{"ImmediateData", boolText(p.ImmediateData)},
		{"MaxBurstLength", strconv.Itoa(p.MaxBurstLength)},
		{"FirstBurstLength", strconv.Itoa(p.FirstBurstLength)},
		{"MaxRecvDataSegmentLength", strconv.Itoa(p.MaxRecvDataSegmentLength)},
		{"MaxConnections", strconv.Itoa(p.MaxConnections)},
		{"MaxOutstandingR2T", strconv.Itoa(p.MaxOutstandingR2T)},
		{"DefaultTime2Wait", strconv.Itoa(p.DefaultTime2Wait)},
		{"DefaultTime2Retain", strconv.Itoa(p.DefaultTime2Retain)},
		{"DataPDUInOrder", boolText(p.DataPDUInOrder)},
		{"DataSequenceInOrder", boolText(p.DataSequenceInOrder)},
	}
}

// Value is p's value of an operational key in wire form (for a
// responder's `mine`: digests as the list it supports).
func (p Params) Value(key string) (string, bool) {
	for _, kv := range p.Offer() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}
