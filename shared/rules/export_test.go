package rules

// IdleMemory returns the memory size of each idle instance of m for tenant.
func IdleMemory(m *Module, tenant string) []uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sizes []uint32
	for _, inst := range m.idle[tenant] {
		sizes = append(sizes, inst.mod.Memory().Size())
	}
	return sizes
}
