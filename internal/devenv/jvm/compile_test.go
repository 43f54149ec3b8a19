//go:build unix

package jvm

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codebank/codebank/internal/testenv/tier"
)

func TestCompile(t *testing.T) {
	tier.Servers(t, "a JDK")
	java, err := FindJava(17, true)
	if err != nil {
		t.Skip(err)
	}
	if _, err := java.javac("the test class"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	jar := filepath.Join(dir, "hello.jar")
	err = java.Compile(context.Background(), Build{
		What:      "the test classes",
		Classpath: dir,
		Sources: map[string][]byte{
			"Hello.java": []byte("package t; public class Hello { public static void main(String[] a) { System.out.println(World.NAME); } }\n"),
			"World.java": []byte("package t; class World { static final String NAME = \"world\"; }\n"),
		},
		Resources: map[string][]byte{"META-INF/services/t.Hello": []byte("t.Hello\n")},
		Jar:       jar,
	})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(jar)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Name == "META-INF/services/t.Hello" {
			r, _ := f.Open()
			if data, _ := io.ReadAll(r); string(data) != "t.Hello\n" {
				t.Errorf("service file = %q", data)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"META-INF/services/t.Hello", "t/Hello.class", "t/World.class"}; !slices.Equal(names, want) {
		t.Errorf("jar holds %v, want %v", names, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left in the jar's directory: %v", entries)
	}

	err = java.Compile(context.Background(), Build{
		What:    "the broken class",
		Sources: map[string][]byte{"Broken.java": []byte("class Broken { int x = ; }\n")},
		Jar:     filepath.Join(dir, "broken.jar"),
	})
	if err == nil || !strings.Contains(err.Error(), "compiling the broken class with ") || !strings.Contains(err.Error(), "Broken.java:1: error") {
		t.Errorf("Compile of a broken class: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "broken.jar")); !os.IsNotExist(err) {
		t.Errorf("a failed Compile left a jar: %v", err)
	}
}

func TestCompileNeedsJDK(t *testing.T) {
	bin := fakeBin(t, map[string]string{"java": javaVersion("17.0.1")}, false)
	java := &Java{Path: filepath.Join(bin, "java"), release: 17}
	err := java.Compile(context.Background(), Build{What: "the node class", Jar: filepath.Join(t.TempDir(), "x.jar")})
	want := "javac not found next to " + java.Path + " nor on PATH: the node class is compiled once, " +
		"so a JDK is needed, not only a JRE (Debian: apt-get install -y openjdk-17-jdk-headless)"
	if err == nil || err.Error() != want {
		t.Errorf("Compile without javac: %v\nwant %s", err, want)
	}
}
