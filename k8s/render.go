package k8s

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Object is one rendered Kubernetes object, as JSON and as a generic map.
type Object struct {
	// JSON is the object as kustomize rendered it.
	JSON []byte
	// Map is JSON decoded.
	Map map[string]any
}

// Kind returns the object's kind.
func (o Object) Kind() string { s, _ := o.Map["kind"].(string); return s }

// APIVersion returns the object's apiVersion.
func (o Object) APIVersion() string { s, _ := o.Map["apiVersion"].(string); return s }

// Name returns metadata.name.
func (o Object) Name() string { return o.meta("name") }

// Namespace returns metadata.namespace.
func (o Object) Namespace() string { return o.meta("namespace") }

func (o Object) meta(key string) string {
	m, _ := o.Map["metadata"].(map[string]any)
	s, _ := m[key].(string)
	return s
}

// String names the object as kubectl does: Kind/namespace/name.
func (o Object) String() string { return o.Kind() + "/" + o.Namespace() + "/" + o.Name() }

// Render builds the kustomization in dir (e.g. k8s/overlays/prod) as `kubectl kustomize` does,
// reading only files under it and the bases it names.
func Render(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var out []Object
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		o := Object{JSON: b}
		if err := json.Unmarshal(b, &o.Map); err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		out = append(out, o)
	}
	return out, nil
}
