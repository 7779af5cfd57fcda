package model

import (
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxFields is the largest number of fields a generated type may have: the
// decoder tracks the fields it has seen in a uint64.
const MaxFields = 64

// Kind is how a field's value goes on the wire.
type Kind int

// The kinds of field the generator supports.
const (
	String   Kind = iota + 1 // string or a named string type
	Bool                     // bool or a named bool type
	Int                      // signed integers and named ones
	Uint                     // unsigned integers and named ones
	Float                    // float32, float64 and named ones
	Bytes                    // []byte or a named []byte type
	Time                     // time.Time
	UUID                     // uuid.UUID
	Any                      // any, interface{}: a JSON-like value
	ValueMap                 // map[string]any
	Slice                    // []T
	Map                      // map[string]T
	Struct                   // a struct with a generated codec
	Pointer                  // *S where S is a Struct
)

// StructType is the model of one struct type to generate a codec for.
type StructType struct {
	Name   string
	Fields []Field
	// Unknown is the Go name of the map[string]any field tagged
	// `msgpack:",unknown"`, which keeps the keys no field reads; "" if
	// there is none.
	Unknown string
}

// Field is one encoded field of a struct.
type Field struct {
	Name     string   // the Go name
	Wire     string   // the name on the wire
	Aliases  []string // other names it is read under (older names)
	Required bool     // must be present when reading
	// Default is the Go constant a field absent when reading is set to
	// (an untyped literal), or "" for the zero value.
	Default string
	Type    *Type
}

// Type is the model of a field's type.
type Type struct {
	Kind Kind
	// Expr is the type as the generated code spells it.
	Expr string
	// Basic is, for String, Bool, Int, Uint and Float, the predeclared type
	// that Expr converts to and from ("string", "int64", ...).
	Basic string
	// Bits is the size of an Int, Uint or Float; 0 for int and uint, whose
	// size depends on the platform.
	Bits int
	// Elem is the element of a Slice, Map or Pointer.
	Elem *Type
	// Imports are those that Expr needs.
	Imports []Import
	// Duration marks time.Duration and the named types over it.
	Duration bool
}

// Import is a package that a type expression refers to.
type Import struct {
	Name  string // the explicit name it is imported under, or "" for none
	Local string // the name code uses
	Path  string
}

// fieldError is an error about one field, with its position.
type fieldError struct {
	pos token.Position
	msg string
}

func (e *fieldError) Error() string {
	if !e.pos.IsValid() {
		return e.msg
	}
	return e.pos.String() + ": " + e.msg
}

// Structs builds the model of the named struct types, in that order. All
// problems are reported together, in source order.
func (p *Package) Structs(names []string) ([]*StructType, error) {
	var (
		structs []*StructType
		errs    []*fieldError
		done    = map[string]bool{}
	)
	for _, name := range names {
		if done[name] {
			errs = append(errs, &fieldError{msg: fmt.Sprintf("type %s is listed twice", name)})
			continue
		}
		done[name] = true
		s, ferrs := p.structType(name)
		errs = append(errs, ferrs...)
		if s != nil {
			structs = append(structs, s)
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *fieldError) int {
			return cmp.Or(strings.Compare(a.pos.Filename, b.pos.Filename),
				cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Column, b.pos.Column))
		})
		list := make([]error, len(errs))
		for i, e := range errs {
			list[i] = e
		}
		return nil, errors.Join(list...)
	}
	return structs, nil
}

// structType builds the model of the struct type name, or returns every
// problem with it.
func (p *Package) structType(name string) (*StructType, []*fieldError) {
	d, st, err := p.structDecl(name)
	if err != nil {
		return nil, []*fieldError{err}
	}
	s := &StructType{Name: name}
	var errs []*fieldError
	seen := map[string]string{} // wire name → Go name
	for _, f := range st.Fields.List {
		errs = append(errs, p.addFields(s, f, d.file, seen)...)
	}
	if len(s.Fields) > MaxFields {
		errs = append(errs, p.declError(d, name, "%d fields; at most %d are supported", len(s.Fields), MaxFields))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// structDecl finds the declaration of the struct type name.
func (p *Package) structDecl(name string) (*decl, *ast.StructType, *fieldError) {
	d, ok := p.decls[name]
	if !ok {
		return nil, nil, &fieldError{msg: fmt.Sprintf("type %s not found in package %s", name, p.Name)}
	}
	if d.spec.TypeParams != nil {
		return nil, nil, p.declError(d, name, "generic types are not supported")
	}
	st, ok := d.spec.Type.(*ast.StructType)
	if !ok || d.spec.Assign.IsValid() {
		return nil, nil, p.declError(d, name, "not a struct type")
	}
	return d, st, nil
}

// declError is a problem with the type name as a whole, at its declaration d.
func (p *Package) declError(d *decl, name, format string, args ...any) *fieldError {
	return &fieldError{pos: p.fset.Position(d.spec.Pos()), msg: name + ": " + fmt.Sprintf(format, args...)}
}

// fieldTag is what the struct tag of a field says: its msgpack key, and
// its default key.
type fieldTag struct {
	skip       bool   // `msgpack:"-"`
	unknown    bool   // `msgpack:",unknown"`
	wire       string // the wire name; "" means the Go name
	aliases    []string
	required   bool
	optional   bool
	badOpt     string // an option cairngen does not know, if any
	def        string // the default tag's value
	hasDefault bool
}

func parseTag(f *ast.Field) fieldTag {
	var st reflect.StructTag
	if f.Tag != nil {
		raw, _ := strconv.Unquote(f.Tag.Value) // the parser accepted it
		st = reflect.StructTag(raw)
	}
	tag := st.Get("msgpack")
	if tag == "-" {
		return fieldTag{skip: true}
	}
	wire, opts, _ := strings.Cut(tag, ",")
	t := fieldTag{wire: wire}
	t.def, t.hasDefault = st.Lookup("default")
	for o := range strings.SplitSeq(opts, ",") {
		switch name, value, hasValue := strings.Cut(o, ":"); {
		case o == "":
		case o == "optional":
			t.optional = true
		case o == "required":
			t.required = true
		case o == "unknown":
			t.unknown = true
		case name == "alias" && hasValue && value != "":
			t.aliases = append(t.aliases, value)
		default:
			t.badOpt = o
		}
	}
	return t
}

// addFields adds to s the fields that f declares (one or more names of one
// type, in a file whose imports file describes) and returns the problems
// with them. seen maps the wire names used so far to their Go names.
func (p *Package) addFields(s *StructType, f *ast.Field, file *srcFile, seen map[string]string) []*fieldError {
	var errs []*fieldError
	errf := func(goName, format string, args ...any) {
		errs = append(errs, &fieldError{
			pos: p.fset.Position(f.Pos()),
			msg: fmt.Sprintf("%s.%s: ", s.Name, goName) + fmt.Sprintf(format, args...),
		})
	}
	if len(f.Names) == 0 {
		errf(types.ExprString(f.Type), "embedded fields are not supported; name the field")
		return errs
	}
	tag := parseTag(f)
	if tag.skip {
		return nil
	}
	var t *Type
	var terr error
	for _, id := range f.Names {
		if !id.IsExported() {
			continue
		}
		if tag.badOpt != "" {
			errf(id.Name, "unsupported msgpack tag option %q (cairngen knows \"required\", \"optional\", \"alias:name\" and \"unknown\"; a generated codec always writes every field)", tag.badOpt)
			continue
		}
		if tag.unknown {
			if t == nil && terr == nil {
				t, terr = p.resolve(f.Type, file, 0)
			}
			switch {
			case terr != nil:
				errf(id.Name, "%v", terr)
			case t.Kind != ValueMap || tag.wire != "" || tag.required || tag.optional || tag.hasDefault || len(tag.aliases) > 0:
				errf(id.Name, "a field that keeps unknown keys is a map[string]any tagged `msgpack:\",unknown\"` and nothing else")
			case s.Unknown != "":
				errf(id.Name, "field %s already keeps the unknown keys", s.Unknown)
			default:
				s.Unknown = id.Name
			}
			continue
		}
		if tag.required && (tag.optional || tag.hasDefault) {
			errf(id.Name, "a required field can be neither optional nor have a default")
			continue
		}
		if t == nil && terr == nil {
			t, terr = p.resolve(f.Type, file, 0)
		}
		if terr != nil {
			errf(id.Name, "%v", terr)
			continue
		}
		w := tag.wire
		if w == "" {
			w = id.Name
		}
		var def string
		if tag.hasDefault {
			var err error
			if def, err = defaultLiteral(tag.def, t); err != nil {
				errf(id.Name, "default %q: %v", tag.def, err)
				continue
			}
		}
		if bad := badUTF8(append([]string{w, tag.def}, tag.aliases...)); bad != "" {
			errf(id.Name, "%s in the tag is not valid UTF-8", strconv.Quote(bad))
			continue
		}
		dup := false
		mine := map[string]bool{}
		for _, n := range append([]string{w}, tag.aliases...) {
			if prev, ok := seen[n]; ok {
				errf(id.Name, "wire name %q is already used by field %s", n, prev)
				dup = true
			} else if mine[n] {
				errf(id.Name, "wire name %q is given twice", n)
				dup = true
			}
			mine[n] = true
		}
		if dup {
			continue
		}
		for n := range mine {
			seen[n] = id.Name
		}
		s.Fields = append(s.Fields, Field{Name: id.Name, Wire: w, Aliases: tag.aliases, Required: tag.required, Default: def, Type: t})
	}
	return errs
}

// basics maps the predeclared types the generator supports to their kind
// and size.
var basics = map[string]struct {
	kind  Kind
	basic string
	bits  int
}{
	"string":  {String, "string", 0},
	"bool":    {Bool, "bool", 0},
	"int":     {Int, "int64", 0},
	"int8":    {Int, "int64", 8},
	"int16":   {Int, "int64", 16},
	"int32":   {Int, "int64", 32},
	"rune":    {Int, "int64", 32},
	"int64":   {Int, "int64", 64},
	"uint":    {Uint, "uint64", 0},
	"uint8":   {Uint, "uint64", 8},
	"byte":    {Uint, "uint64", 8},
	"uint16":  {Uint, "uint64", 16},
	"uint32":  {Uint, "uint64", 32},
	"uint64":  {Uint, "uint64", 64},
	"float32": {Float, "float32", 32},
	"float64": {Float, "float64", 64},
}

// maxResolveDepth bounds the chain of named types and the nesting of
// composite ones, so a cycle of named types is reported, not followed.
const maxResolveDepth = 64

// resolve builds the model of the type expression e, which appears in a
// file whose imports f describes.
func (p *Package) resolve(e ast.Expr, f *srcFile, depth int) (*Type, error) {
	if depth > maxResolveDepth {
		return nil, fmt.Errorf("type %s nests too deeply (or its definition is cyclic)", types.ExprString(e))
	}
	switch e := e.(type) {
	case *ast.ParenExpr:
		return p.resolve(e.X, f, depth+1)
	case *ast.Ident:
		return p.resolveIdent(e, depth)
	case *ast.SelectorExpr:
		return resolveQualified(e, f)
	case *ast.StarExpr:
		return p.resolvePointer(e, f, depth)
	case *ast.ArrayType:
		return p.resolveSlice(e, f, depth)
	case *ast.MapType:
		return p.resolveMap(e, f, depth)
	case *ast.InterfaceType:
		if len(e.Methods.List) == 0 {
			return &Type{Kind: Any, Expr: "any"}, nil
		}
		return nil, fmt.Errorf("unsupported type %s: only the empty interface is supported", types.ExprString(e))
	case *ast.ChanType:
		return nil, fmt.Errorf("unsupported type %s: channels cannot be encoded", types.ExprString(e))
	case *ast.FuncType:
		return nil, fmt.Errorf("unsupported type %s: funcs cannot be encoded", types.ExprString(e))
	case *ast.StructType:
		return nil, fmt.Errorf("unsupported type %s: declare the struct as a named type and generate its codec", types.ExprString(e))
	case *ast.IndexExpr, *ast.IndexListExpr:
		return nil, fmt.Errorf("unsupported type %s: generic types are not supported", types.ExprString(e))
	}
	return nil, fmt.Errorf("unsupported type %s", types.ExprString(e))
}

// resolveIdent builds the model of an unqualified type name: one declared
// in the package, or a predeclared one.
func (p *Package) resolveIdent(e *ast.Ident, depth int) (*Type, error) {
	if d, ok := p.decls[e.Name]; ok {
		return p.resolveNamed(e.Name, d, depth)
	}
	if b, ok := basics[e.Name]; ok {
		return &Type{Kind: b.kind, Expr: e.Name, Basic: b.basic, Bits: b.bits}, nil
	}
	switch e.Name {
	case "any":
		return &Type{Kind: Any, Expr: "any"}, nil
	case "uintptr", "complex64", "complex128", "error":
		return nil, fmt.Errorf("unsupported type %s", e.Name)
	}
	return nil, fmt.Errorf("unknown type %s (not declared in package %s, or in a file the build tags exclude)", e.Name, p.Name)
}

// resolveQualified builds the model of a type of another package, pkg.T:
// time.Time, time.Duration, uuid.UUID, or a struct with a generated codec.
func resolveQualified(e *ast.SelectorExpr, f *srcFile) (*Type, error) {
	x, ok := e.X.(*ast.Ident)
	if !ok || !e.Sel.IsExported() {
		return nil, fmt.Errorf("unsupported type %s", types.ExprString(e))
	}
	ipath, ok := f.imports[x.Name]
	if !ok {
		return nil, fmt.Errorf("type %s: package %s is not imported under that name (import it with an explicit name)", types.ExprString(e), x.Name)
	}
	imp := Import{Local: x.Name, Path: ipath}
	if f.named[x.Name] {
		imp.Name = x.Name
	}
	expr := x.Name + "." + e.Sel.Name
	switch ipath + "." + e.Sel.Name {
	case "time.Time":
		return &Type{Kind: Time, Expr: expr, Imports: []Import{imp}}, nil
	case "time.Duration":
		return &Type{Kind: Int, Expr: expr, Basic: "int64", Bits: 64, Imports: []Import{imp}, Duration: true}, nil
	case "github.com/google/uuid.UUID":
		return &Type{Kind: UUID, Expr: expr, Imports: []Import{imp}}, nil
	}
	// Assumed to be a struct with a generated codec; the compiler says so
	// if it is not.
	return &Type{Kind: Struct, Expr: expr, Imports: []Import{imp}}, nil
}

// resolvePointer builds the model of *S, where S must be a struct.
func (p *Package) resolvePointer(e *ast.StarExpr, f *srcFile, depth int) (*Type, error) {
	elem, err := p.resolve(e.X, f, depth+1)
	if err != nil {
		return nil, err
	}
	if elem.Kind != Struct {
		return nil, fmt.Errorf("unsupported type %s: only pointers to structs are supported", types.ExprString(e))
	}
	return &Type{Kind: Pointer, Expr: "*" + elem.Expr, Elem: elem, Imports: elem.Imports}, nil
}

// resolveSlice builds the model of []T, of which []byte is bytes on the
// wire; arrays are refused.
func (p *Package) resolveSlice(e *ast.ArrayType, f *srcFile, depth int) (*Type, error) {
	if e.Len != nil {
		return nil, fmt.Errorf("unsupported type %s: arrays are not supported; use a slice", types.ExprString(e))
	}
	elem, err := p.resolve(e.Elt, f, depth+1)
	if err != nil {
		return nil, err
	}
	if elem.Kind == Uint && elem.Bits == 8 {
		if elem.Expr != "byte" && elem.Expr != "uint8" {
			return nil, fmt.Errorf("unsupported type %s: a slice of a named byte type; use []byte", types.ExprString(e))
		}
		return &Type{Kind: Bytes, Expr: "[]byte"}, nil
	}
	return &Type{Kind: Slice, Expr: "[]" + elem.Expr, Elem: elem, Imports: elem.Imports}, nil
}

// resolveMap builds the model of map[string]T, of which map[string]any is
// a JSON-like value map.
func (p *Package) resolveMap(e *ast.MapType, f *srcFile, depth int) (*Type, error) {
	if k, ok := e.Key.(*ast.Ident); !ok || k.Name != "string" {
		return nil, fmt.Errorf("unsupported type %s: map keys must be string", types.ExprString(e))
	}
	elem, err := p.resolve(e.Value, f, depth+1)
	if err != nil {
		return nil, err
	}
	if elem.Kind == Any && elem.Expr == "any" {
		return &Type{Kind: ValueMap, Expr: "map[string]any"}, nil
	}
	return &Type{Kind: Map, Expr: "map[string]" + elem.Expr, Elem: elem, Imports: elem.Imports}, nil
}

// resolveNamed builds the model of a type declared in the package.
func (p *Package) resolveNamed(name string, d *decl, depth int) (*Type, error) {
	if d.spec.TypeParams != nil {
		return nil, fmt.Errorf("unsupported type %s: generic types are not supported", name)
	}
	if d.spec.Assign.IsValid() { // an alias: the aliased type
		return p.resolve(d.spec.Type, d.file, depth+1)
	}
	if _, ok := d.spec.Type.(*ast.StructType); ok {
		return &Type{Kind: Struct, Expr: name}, nil
	}
	if p.resolving[name] {
		return nil, fmt.Errorf("type %s is defined in terms of itself", name)
	}
	if p.resolving == nil {
		p.resolving = map[string]bool{}
	}
	p.resolving[name] = true
	u, err := p.resolve(d.spec.Type, d.file, depth+1)
	delete(p.resolving, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	switch u.Kind {
	case String, Bool, Int, Uint, Float, Bytes, Any, ValueMap, Slice, Map:
		// Values of the named type are converted to and from its
		// underlying type, or assigned where Go allows that.
		n := *u
		n.Expr = name
		n.Imports = nil
		return &n, nil
	case Struct:
		// type A B, where B is a struct: A has no methods of B's, so it
		// needs a generated codec of its own.
		return &Type{Kind: Struct, Expr: name}, nil
	}
	return nil, fmt.Errorf("unsupported type %s: a named type over %s is not supported; use %s itself", name, u.Expr, u.Expr)
}

// badUTF8 returns the first of names that is not valid UTF-8, or "".
func badUTF8(names []string) string {
	for _, n := range names {
		if !utf8.ValidString(n) {
			return n
		}
	}
	return ""
}

// defaultLiteral checks the default tag's value s against the field's type
// and returns it as an untyped Go constant, which assigns to the field
// whatever its named type. Defaults are for strings, bools, numbers and
// durations (written as time.ParseDuration reads them, or in nanoseconds).
func defaultLiteral(s string, t *Type) (string, error) {
	switch t.Kind {
	case String:
		return strconv.Quote(s), nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return "", errors.New("not a bool")
		}
		return strconv.FormatBool(b), nil
	case Int:
		if t.Duration {
			if d, err := time.ParseDuration(s); err == nil {
				return strconv.FormatInt(int64(d), 10), nil
			}
		}
		bits := t.Bits
		if bits == 0 {
			bits = 32 // int is 32 bits on some platforms
		}
		i, err := strconv.ParseInt(s, 0, bits)
		if err != nil {
			return "", fmt.Errorf("not an integer of %d bits", bits)
		}
		return strconv.FormatInt(i, 10), nil
	case Uint:
		bits := t.Bits
		if bits == 0 {
			bits = 32
		}
		u, err := strconv.ParseUint(s, 0, bits)
		if err != nil {
			return "", fmt.Errorf("not an unsigned integer of %d bits", bits)
		}
		return strconv.FormatUint(u, 10), nil
	case Float:
		f, err := strconv.ParseFloat(s, t.Bits)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("not a finite float%d", t.Bits)
		}
		lit := strconv.FormatFloat(f, 'g', -1, t.Bits)
		if !strings.ContainsAny(lit, ".eE") {
			lit += ".0"
		}
		return lit, nil
	}
	return "", errors.New("defaults are supported for strings, bools, numbers and time.Duration only")
}
