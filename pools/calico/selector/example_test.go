package selector_test

import (
	"fmt"

	"poolguard.dev/poolguard/pools/calico/selector"
)

func ExampleParse() {
	sel, err := selector.Parse(`kubernetes.io/metadata.name in {'payments','billing'} && !has(quarantine)`)
	if err != nil {
		panic(err)
	}
	fmt.Println(sel)
	fmt.Println(sel.Matches(map[string]string{"kubernetes.io/metadata.name": "payments"}))
	fmt.Println(sel.Matches(map[string]string{"kubernetes.io/metadata.name": "payments", "quarantine": "yes"}))

	// A selector that does not parse: the error says where and what was
	// expected, and the Selector returned with it matches nothing.
	bad, err := selector.Parse(`zone == a`)
	fmt.Println(err)
	fmt.Println(bad.Matches(map[string]string{"zone": "a"}))
	// Output:
	// kubernetes.io/metadata.name in {"billing", "payments"} && !has(quarantine)
	// true
	// false
	// invalid Calico selector: at position 9: expected a quoted string after "==", found "a"
	// false
}
