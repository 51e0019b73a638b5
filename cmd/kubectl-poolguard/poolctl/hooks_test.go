package poolctl

// SetPageSize makes lists ask for n objects a page until the returned
// function puts the default back, so that a test pages through a few.
func SetPageSize(n int64) (restore func()) {
	old := pageSize
	pageSize = n
	return func() { pageSize = old }
}
