package symbols

import (
	"debug/elf"
	"encoding/binary"
)

// moduledata is what the runtime itself starts from (runtime.moduledata in
// symtab.go): pointers to the pcHeader and each table in it, the text start
// (the base of function entry offsets, which Go 1.26 no longer stores in the
// pcHeader, and which with external linking is not the start of .text), and
// go:func.* (the base of funcdata offsets). Reading it, rather than looking
// for sections and symbols, works for stripped binaries, PIE and external
// linking alike: the system linker folds .gopclntab into .data.rel.ro in a
// PIE before Go 1.26, and strip removes the symbols of go:func.*.
type moduledata struct {
	pcHeader uint64
	// funcnametab, cutab, filetab, pctab, pclntab: {address, length in
	// bytes}. ftab is at the start of pclntab.
	funcnames, cutab, filetab, pctab, pclntab [2]uint64
	nftab                                     uint64 // ftab entries: nfunc+1
	text, gofunc                              uint64
	types                                     uint64 // the base of a _type's name offsets
}

// Word indexes of runtime.moduledata fields: pcHeader, then the slices
// funcnametab, cutab, filetab, pctab, pclntable, ftab ({ptr, len, cap}
// each), findfunctab, minpc, maxpc, text, etext, eight section bounds,
// [covctrs, ecovctrs since Go 1.20,] end, gcdata, gcbss, types, etypes,
// rodata, gofunc.
const (
	mdFuncnametab = 1
	mdCutab       = 4
	mdFiletab     = 7
	mdPctab       = 10
	mdPclntable   = 13
	mdFtab        = 16
	mdText        = 22
	mdGofunc118   = 38
	mdGofunc120   = 40
)

// pcHeader field word indexes, counted from its 8th byte (after magic, two
// pad bytes, minLC and ptrSize).
const (
	hdrNfunc       = 0
	hdrFuncnameOff = 3
	hdrCutabOff    = 4
)

// findModuledata finds runtime.firstmoduledata without symbols: the one
// place in writable data holding a pointer to a pcHeader followed by the
// funcnametab and cutab slices that header locates. Words are read as
// stored in the file: both Go's and the system linker store the link-time
// value there even when a PIE also carries a dynamic relocation for it.
func (b *Binary) findModuledata(order binary.ByteOrder, ptrSize int) (moduledata, bool) {
	word := func(p []byte, i int) uint64 {
		if ptrSize == 4 {
			return uint64(order.Uint32(p[4*i:]))
		}
		return order.Uint64(p[8*i:])
	}
	for _, s := range b.segs {
		if s.flags&elf.PF_W == 0 {
			continue
		}
		data := b.data[s.off : s.off+s.filesz]
		for off := 0; off+(mdGofunc120+1)*ptrSize <= len(data); off += ptrSize {
			md := data[off:]
			hdrAddr := word(md, 0)
			hdr, ok := b.bytesAt(hdrAddr, uint64(8+8*ptrSize))
			if !ok {
				continue
			}
			magic := order.Uint32(hdr)
			if magic != magic118 && magic != magic120 || int(hdr[7]) != ptrSize {
				continue
			}
			h := hdr[8:]
			if word(md, mdFuncnametab) != hdrAddr+word(h, hdrFuncnameOff) ||
				word(md, mdCutab) != hdrAddr+word(h, hdrCutabOff) ||
				word(md, mdFtab+1) != word(h, hdrNfunc)+1 {
				continue
			}
			slice := func(i int, elem uint64) [2]uint64 { return [2]uint64{word(md, i), word(md, i+1) * elem} }
			gofunc := mdGofunc120
			if magic == magic118 {
				gofunc = mdGofunc118
			}
			return moduledata{
				pcHeader:  hdrAddr,
				funcnames: slice(mdFuncnametab, 1),
				cutab:     slice(mdCutab, 4),
				filetab:   slice(mdFiletab, 1),
				pctab:     slice(mdPctab, 1),
				pclntab:   slice(mdPclntable, 1),
				nftab:     word(md, mdFtab+1),
				text:      word(md, mdText),
				gofunc:    word(md, gofunc),
				types:     word(md, gofunc-3),
			}, true
		}
	}
	return moduledata{}, false
}
