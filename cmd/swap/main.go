// Command swap moves live traffic between the blue and green colors of a containerised
// app behind HAProxy, without dropping a request. See the README.
package main

import "os"

func main() { os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr)) }
