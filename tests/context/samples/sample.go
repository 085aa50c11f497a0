package main

import (
	"fmt"
	"strings"
)

type Stack struct {
	items []int
}

type Shape interface {
	Area() float64
}

func (s *Stack) Push(v int) {
	s.items = append(s.items, v)
}

func main() {
	f := func() {}
	f()
	fmt.Println(strings.ToUpper("x"))
}
