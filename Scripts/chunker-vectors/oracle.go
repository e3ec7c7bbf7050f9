// The oracle of make_vectors.py: prints the comma-separated lengths of the chunks Kubo's
// splitter for the spec in argv[1] (boxo/chunker.FromString, as `ipfs add --chunker`) cuts
// stdin into. Build: go mod init oracle && go get github.com/ipfs/boxo/chunker && go build.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	chunk "github.com/ipfs/boxo/chunker"
)

func main() {
	splitter, err := chunk.FromString(bufio.NewReaderSize(os.Stdin, 1<<20), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var lengths []string
	for {
		c, err := splitter.NextBytes()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		lengths = append(lengths, strconv.Itoa(len(c)))
	}
	fmt.Println(strings.Join(lengths, ","))
}
