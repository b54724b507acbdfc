package probes

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Sites are the instruction offsets, relative to a function's entry, where a
// function's probes can go. There are no return sites: uretprobes crash Go
// code (the runtime moves goroutine stacks and trips on the rewritten return
// address, golang/go#22008), and a probe on a RET is single-stepped, as dear
// as one on the first byte; what happens after a call is probed at the next
// call instead (Calls).
type Sites struct {
	// Entry is the offset of the entry probe. It is always before the
	// function moves SP, so the word at SP is the return address into the
	// direct caller and the arguments are still in their registers.
	Entry uint64
	// Branch says the entry probe sits on the stack check's JBE, which jumps
	// to morestack when the stack must grow; morestack then re-runs the
	// function from its start, so a hit whose jump will be taken must not
	// count (bpf/common.h: will_grow_stack).
	Branch bool
	// Calls are the direct calls the function makes, which the kernel
	// emulates: CALL rel32 (5 bytes, no prefix) on amd64, BL on arm64.
	Calls []Call
	// ArgSlot is the offset from the frame pointer (BP, R29), once the
	// frame is set up, of the first argument's spill slot; 0 when the
	// prologue was not recognized.
	ArgSlot int64
}

// A Call is a CALL instruction at offset At whose destination is Target,
// both relative to the calling function's entry (FindSites), or a file
// offset and an address (FuncSites).
type Call struct {
	At, Target uint64
	// ArgSpilled says the straight-line code before the call stores the
	// function's first argument in Go's register ABI (AX, R0) to its spill
	// slot above the frame (Sites.ArgSlot), which holds it from there on.
	ArgSpilled bool
}

// FindSites decodes an amd64 function and picks its probe sites.
//
// The entry probe goes on the PUSHQ BP that follows the stack-bound check
// (CMPQ SP, 16(R14); JBE morestack): the kernel emulates a push instead of
// single-stepping it, about 30× cheaper, and it runs once per call even when
// morestack re-runs the prologue. Toolchains before Go 1.21 open the frame
// with SUBQ, which the kernel single-steps, so there the probe goes on the
// emulated JBE itself. A function without a stack check is probed at its
// first instruction.
func FindSites(code []byte) (Sites, error) {
	var s Sites
	var insts []x86asm.Inst
	var offs []uint64
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err == nil && inst.Op == 0 {
			// x86asm reports some invalid bytes as a prefix-only
			// instruction rather than an error.
			err = fmt.Errorf("invalid instruction % x", code[off:off+inst.Len])
		}
		if err != nil {
			// Without instruction boundaries no offset is safe to probe.
			return Sites{}, fmt.Errorf("decode at +%#x: %w", off, err)
		}
		insts = append(insts, inst)
		offs = append(offs, uint64(off))
		off += inst.Len
	}
	slot, hasFrame := argSlot(insts)
	if hasFrame {
		s.ArgSlot = 16 // above the saved BP and the return address
	}
	for i, inst := range insts {
		if rel, ok := inst.Args[0].(x86asm.Rel); ok && inst.Op == x86asm.CALL && inst.Len == callLen {
			next := offs[i] + uint64(inst.Len)
			s.Calls = append(s.Calls, Call{At: offs[i], Target: next + uint64(int64(rel)), ArgSpilled: hasFrame && spilledAX(insts[:i], slot)})
		}
	}
	s.Entry, s.Branch = entrySite(insts, offs)
	return s, nil
}

// callLen is the length of CALL rel32, the only calls Sites lists on amd64.
const callLen = 5

// callSize is the length of the calls Sites lists, on arch: where the
// return address points after a call.
func callSize(arch string) uint64 {
	if arch == "arm64" {
		return 4
	}
	return callLen
}

// argSlot returns the SP offset, after the prologue, of the first
// argument's spill slot: above the frame (SUBQ $n, SP), the saved BP and the
// return address. Go 1.21 on push BP before the SUBQ; earlier toolchains
// save it inside the frame.
func argSlot(insts []x86asm.Inst) (int64, bool) {
	pushed := false
	for _, inst := range insts[:min(len(insts), 8)] {
		if isPushBP(inst) {
			pushed = true
		}
		if inst.Op == x86asm.SUB && inst.Args[0] == x86asm.RSP {
			if n, ok := inst.Args[1].(x86asm.Imm); ok {
				if pushed {
					return int64(n) + 16, true
				}
				return int64(n) + 8, true
			}
		}
	}
	return 0, false
}

// spilledAX reports whether the straight-line code that ends insts stores
// AX to the argument slot at SP+slot.
func spilledAX(insts []x86asm.Inst, slot int64) bool {
	for i := len(insts) - 1; i >= 0; i-- {
		inst := insts[i]
		if m, ok := inst.Args[0].(x86asm.Mem); ok && inst.Op == x86asm.MOV && inst.Args[1] == x86asm.RAX &&
			m.Base == x86asm.RSP && m.Index == 0 && m.Disp == slot {
			return true
		}
		switch inst.Op {
		case x86asm.CALL, x86asm.RET, x86asm.JMP, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE,
			x86asm.JNE, x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JS, x86asm.JNS:
			return false // the start of the block, at the latest
		}
	}
	return false
}

// entrySite returns the offset of the entry probe (see FindSites) and
// whether it is the stack check's JBE.
func entrySite(insts []x86asm.Inst, offs []uint64) (uint64, bool) {
	// The stack check is CMPQ SP, 0x10(R14) or, for large frames,
	// LEAQ -n(SP), R12; CMPQ R12, 0x10(R14); then a conditional jump.
	for i := 0; i < len(insts) && i < 3; i++ {
		if insts[i].Op != x86asm.CMP || !isStackGuard(insts[i].Args[1]) {
			continue
		}
		j := i + 1
		if j >= len(insts) || insts[j].Op != x86asm.JBE {
			break
		}
		if j+1 < len(insts) && isPushBP(insts[j+1]) {
			return offs[j+1], false
		}
		return offs[j], true
	}
	return 0, false
}

// isStackGuard reports whether a is g.stackguard0, 0x10(R14).
func isStackGuard(a x86asm.Arg) bool {
	m, ok := a.(x86asm.Mem)
	return ok && m.Base == x86asm.R14 && m.Disp == 0x10 && m.Index == 0
}

func isPushBP(inst x86asm.Inst) bool {
	return inst.Op == x86asm.PUSH && inst.Args[0] == x86asm.RBP
}
