package cpuprof

// SetUseLink switches BPF links on or off, returning the old setting.
func SetUseLink(on bool) bool {
	old := useLink
	useLink = on
	return old
}
