// Package closer collects the Close functions of the clients a function
// builds, so a failed build releases what it had opened and a finished one
// releases everything, newest first.
package closer

// Stack holds Close functions; the zero value is ready to use.
type Stack []func()

// Add pushes a Close function. For closers that return an error (which at
// shutdown nobody can act on) wrap them: s.Add(func() { c.Close() }).
func (s *Stack) Add(f func()) { *s = append(*s, f) }

// Close calls every function, newest first, and empties the stack.
func (s *Stack) Close() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i]()
	}
	*s = nil
}
