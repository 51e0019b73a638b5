// Package selector parses and evaluates Calico's selector language, the
// language of a Calico IPPool's nodeSelector and namespaceSelector (not
// Kubernetes label selectors). It is pure: no I/O, no Calico imports.
//
// A selector is parsed once into an immutable Selector and then matched
// against label maps:
//
//	sel, err := selector.Parse(`kubernetes.io/metadata.name in {"payments", "billing"}`)
//	if err != nil { /* the pool is unusable; err wraps ErrInvalid */ }
//	ok := sel.Matches(namespace.Labels)
//
// # Grammar
//
// As in Calico's selector reference
// (https://docs.tigera.io/calico/latest/reference/resources/networkpolicy,
// section "Selectors"):
//
//	all()                  every resource
//	global()               see below
//	k == 'v'   k != 'v'    equality, inequality
//	has(k)     !has(k)     presence, absence
//	k in {'a', 'b'}        value in set
//	k not in {'a', 'b'}    value not in set
//	k contains 's'         substring
//	k starts with 's'      prefix
//	k ends with 's'        suffix
//	!e   e && e   e || e   ( e )
//
// Precedence, highest first: the match operators, parentheses, "!", "&&",
// "||". So `!a == 'x' || b == 'y' && has(c)` is
// `(!(a == 'x')) || ((b == 'y') && has(c))`.
//
// Lexical rules follow Calico's tokenizer, so that poolguard accepts the
// selectors Calico accepts and evaluates them the same way:
//
//   - Whitespace is spaces and tabs only; a newline is an error, as in
//     Calico.
//   - A label key is a run of [A-Za-z0-9_./-], e.g. projectcalico.org/name
//     or kubernetes.io/metadata.name. Keys are not checked against
//     Kubernetes' prefix/name rules. Calico does not check them either, and
//     a key that cannot exist on a Kubernetes object is just never present.
//   - Strings use single or double quotes and have no escapes: a value runs
//     to the next quote of the same kind.
//   - Operator words need no surrounding spaces (`k in{'a'}`,
//     `k startswith 'x'`, `k notin {'a'}`), and a set may be empty or end
//     in a comma, as Calico's parser allows.
//
// # Semantics
//
// Absent labels, per Calico's reference table: `k == 'v'`, `has(k)`,
// `k in {...}`, `k contains`, `k starts with` and `k ends with` are false
// when k is absent; `k != 'v'`, `!has(k)` and `k not in {...}` are true.
//
// Empty selector: Parse("") (or only blanks) returns all(). Calico's own
// parser does the same, and Calico IPAM (libcalico-go ipam SelectsNode /
// SelectsNamespace) treats an empty nodeSelector or namespaceSelector on an
// IPPool as selecting every node or namespace. The IPPool reference
// documents nodeSelector's default as all(), and the v3 API says that when
// namespaceSelector is specified, both selectors must match. A pool with no
// selectors therefore serves everywhere, so callers can Parse the field as
// it is.
//
// global(): in Calico it means "all non-namespaced resources" and is meant
// for a policy's namespaceSelector, where Calico's policy engine rewrites
// it. Evaluated directly against a label map, which is what Calico IPAM
// does with a node's or namespace's labels, it is true. poolguard treats it
// the same way: it matches every label map, like all(). String() still
// writes global(), so a person sees what the pool says.
//
// Fail closed: the zero Selector (what Parse returns with an error) matches
// nothing, and its String() is "!all()", a selector that also matches
// nothing. A selector that failed to parse cannot act as match-all, even if
// the error is ignored.
//
// Limits: at most MaxBytes of input, and of canonical rendering, and
// parentheses nested at most MaxDepth deep. A hostile selector cannot
// exhaust the webhook, and String() of any accepted selector always parses
// again.
package selector
