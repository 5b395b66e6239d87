package relocate_test

import (
	"fmt"

	"github.com/tapeward/tapeward/tools/lib/relocate"
)

func ExampleRelocator_Target() {
	r, err := relocate.New(relocate.Rules{Where: "/tmp/r", StripPrefix: "/srv", AddPrefix: "/restore", AddSuffix: ".old"})
	if err != nil {
		panic(err)
	}
	for _, p := range []string{"/srv/www/index.html", "/srv/www/", "/etc/hosts", "/srv/../etc/shadow"} {
		t, err := r.Target(p)
		fmt.Println(t, err)
	}
	// Output:
	// /tmp/r/restore/www/index.html.old <nil>
	// /tmp/r/restore/www <nil>
	// /tmp/r/restore/etc/hosts.old <nil>
	//  stored path "/srv/../etc/shadow" has a ".." element: refused (it could reach outside the target)
}
