package probes

import (
	"encoding/binary"

	"golang.org/x/arch/arm64/arm64asm"
)

// FindSitesArm64 decodes an arm64 function and picks its probe sites.
//
// A Go arm64 function opens with the stack-bound check
//
//	MOVD 16(R28), R16          ldr  x16, [x28, #16]   (g.stackguard0)
//	[SUB $n, RSP, R17]         (large frames)
//	CMP R16, RSP               cmp  sp, x16
//	BLS morestack              b.ls …
//	MOVD.W R30, -N(RSP)        str  x30, [sp, #-N]!   (or SUB/STP for N > 255)
//	MOVD R29, -8(RSP)          stur x29, [sp, #-8]
//	SUB $8, RSP, R29           sub  x29, sp, #8
//
// The kernel single-steps the loads, stores and arithmetic and simulates
// the branches, so the entry probe goes on the B.LS, whatever the Go
// version (Branch: a hit whose branch will be taken does not count). At
// that point the return address is still in the link register and the
// arguments in their registers. A function without a stack check is probed
// at its first instruction. Calls are BL, which the kernel simulates too.
//
// Every arm64 instruction is 4 bytes, so every aligned offset is a
// boundary; words that do not decode (the zero padding after a function)
// are skipped, never probed.
func FindSitesArm64(code []byte) (Sites, error) {
	var s Sites
	var insts []arm64asm.Inst
	var offs []uint64
	for off := 0; off+4 <= len(code); off += 4 {
		inst, err := arm64asm.Decode(code[off : off+4])
		if err != nil {
			inst = arm64asm.Inst{Enc: binary.LittleEndian.Uint32(code[off:])}
		}
		insts = append(insts, inst)
		offs = append(offs, uint64(off))
	}
	frame, hasFrame := arm64FrameSize(insts)
	if hasFrame {
		// Above the frame: the caller's saved-LR word, then the
		// arguments' spill area; the frame pointer is 8 below SP.
		s.ArgSlot = frame + 16
	}
	for i, inst := range insts {
		if inst.Op == arm64asm.BL {
			if rel, ok := inst.Args[0].(arm64asm.PCRel); ok {
				s.Calls = append(s.Calls, Call{At: offs[i], Target: offs[i] + uint64(int64(rel)),
					ArgSpilled: hasFrame && arm64SpilledX0(insts[:i], frame+8)})
			}
		}
	}
	s.Entry, s.Branch = arm64EntrySite(insts, offs)
	return s, nil
}

// Encodings the prologue matchers read fields of (arm64asm keeps memory
// operands' offsets unexported). Rn is bits 5..9, Rt bits 0..4.
const (
	encLdrG16    = 0xf9400b90 // ldr x16, [x28, #16]
	maskLdStImm  = 0xffc00000 // 64-bit LDR/STR, unsigned scaled imm12
	encStrImm    = 0xf9000000
	maskStrPre   = 0xffe00c00 // 64-bit STR, pre-indexed signed imm9
	encStrPre    = 0xf8000c00
	maskSubImm   = 0xff800000 // 64-bit SUB (immediate), imm12 shifted by bit 22
	encSubImm    = 0xd1000000
	maskStp      = 0xffc00000 // 64-bit STP, signed offset imm7
	encStp       = 0xa9000000
	regSP        = 31
	regFP, regLR = 29, 30
	condLS       = 9 // arm64asm.Cond value of LS
	maxPrologue  = 10
)

func rn(enc uint32) uint32 { return enc >> 5 & 31 }
func rt(enc uint32) uint32 { return enc & 31 }

// arm64FrameSize returns N, the size of the frame the prologue opens:
// STR R30, [SP, #-N]! or, for frames too large for that, SUB $N, SP, Rx;
// STP R29, R30, [Rx, #-8]; MOV Rx, SP.
func arm64FrameSize(insts []arm64asm.Inst) (int64, bool) {
	for i, inst := range insts[:min(len(insts), maxPrologue)] {
		e := inst.Enc
		if e&maskStrPre == encStrPre && rt(e) == regLR && rn(e) == regSP {
			imm9 := int64(int32(e<<11) >> 23) // bits 12..20, sign-extended
			if imm9 < 0 {
				return -imm9, true
			}
		}
		if e&maskSubImm == encSubImm && rn(e) == regSP && rt(e) != regSP && rt(e) != regFP && i+1 < len(insts) {
			n := int64(e >> 10 & 0xfff)
			if e>>22&1 == 1 {
				n <<= 12
			}
			// The store of the frame record through the new SP-to-be
			// tells the frame's SUB from the stack check's.
			if st := insts[i+1].Enc; st&maskStp == encStp && rn(st) == rt(e) && rt(st) == regFP && st>>10&31 == regLR {
				return n, true
			}
		}
	}
	return 0, false
}

// arm64SpilledX0 reports whether the straight-line code that ends insts
// stores R0 to SP+slot: STR R0, [SP, #slot] or STP R0, Rx, [SP, #slot].
func arm64SpilledX0(insts []arm64asm.Inst, slot int64) bool {
	for i := len(insts) - 1; i >= 0; i-- {
		e := insts[i].Enc
		if e&maskLdStImm == encStrImm && rt(e) == 0 && rn(e) == regSP && int64(e>>10&0xfff)*8 == slot {
			return true
		}
		if e&maskStp == encStp && rt(e) == 0 && rn(e) == regSP && int64(int32(e<<10)>>25)*8 == slot {
			return true
		}
		switch insts[i].Op {
		case arm64asm.B, arm64asm.BL, arm64asm.BR, arm64asm.BLR, arm64asm.RET,
			arm64asm.CBZ, arm64asm.CBNZ, arm64asm.TBZ, arm64asm.TBNZ:
			return false // the start of the block, at the latest
		}
	}
	return false
}

// arm64EntrySite returns the offset of the entry probe (see FindSitesArm64)
// and whether it is the stack check's B.LS.
func arm64EntrySite(insts []arm64asm.Inst, offs []uint64) (uint64, bool) {
	if len(insts) == 0 || insts[0].Enc != encLdrG16 {
		return 0, false
	}
	for i := 1; i < len(insts) && i < 4; i++ {
		inst := insts[i]
		if inst.Op != arm64asm.B {
			continue
		}
		if c, ok := inst.Args[0].(arm64asm.Cond); ok && c.Value == condLS && i > 0 && insts[i-1].Op == arm64asm.CMP {
			return offs[i], true
		}
		break
	}
	return 0, false
}
