// Command app is the application the supervisor's tests install and run. It prints
// "started VERSION uid=UID", then does what its flags say, then runs until SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	exit := flag.Int("exit", -1, "exit with this status (at once, or after -after)")
	after := flag.Duration("after", 0, "wait this long before -exit")
	write := flag.String("write", "", "write this to /storage/data")
	read := flag.Bool("read", false, "print /storage/data")
	fill := flag.Int("fill", 0, "write this many KiB to /storage/fill (synced)")
	deny := flag.Int("deny", 0, "try this many times to write /proc/self/comm, which Landlock denies")
	raw := flag.Int("raw", 0, "try this many times to make a raw socket, which seccomp refuses")
	rawChild := flag.Int("raw-child", 0, "run a child process of this program that tries -raw this many times")
	flag.Parse()

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Printf("started %s uid=%d\n", os.Getenv("RAMPART_IMAGE_VERSION"), os.Getuid())
	for i := range *raw {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
		if err == nil {
			syscall.Close(fd)
		}
		if i == 0 {
			fmt.Println("raw:", err)
		}
	}
	if *rawChild > 0 {
		out, err := exec.Command("/proc/self/exe", "-raw", strconv.Itoa(*rawChild), "-exit", "0").CombinedOutput()
		fmt.Printf("raw child: %q %v\n", out, err)
	}
	if *exit >= 0 {
		time.Sleep(*after)
		os.Exit(*exit)
	}
	if *write != "" {
		if err := os.WriteFile("/storage/data", []byte(*write), 0o600); err != nil {
			fmt.Println("write:", err)
			os.Exit(2)
		}
		fmt.Println("wrote", *write)
	}
	if *fill > 0 {
		f, err := os.Create("/storage/fill")
		if err == nil {
			_, err = f.Write(make([]byte, *fill*1024))
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		fmt.Println("filled", *fill, err)
	}
	for i := range *deny {
		f, err := os.OpenFile("/proc/self/comm", os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		if i == 0 {
			fmt.Println("denied:", err)
		}
	}
	if *read {
		b, err := os.ReadFile("/storage/data")
		fmt.Printf("read %q %v\n", b, err)
	}
	<-term
	fmt.Println("sigterm")
}
