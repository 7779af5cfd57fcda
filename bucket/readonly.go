package bucket

import "context"

// ReadOnly returns a Bucket that reads b and refuses every Put and Delete
// with ErrReadOnly (wrapped in an *Error), sending nothing to b. A bucket
// that is read-only already (a Dir opened with DirOptions.ReadOnly, or one
// ReadOnly returned) is returned as it is. The result does not implement
// Versioned, whose removals are writes.
func ReadOnly(b Bucket) Bucket {
	if ro, ok := b.(interface{ readOnly() bool }); ok && ro.readOnly() {
		return b
	}
	return readOnlyBucket{b}
}

type readOnlyBucket struct{ b Bucket }

func (r readOnlyBucket) readOnly() bool { return true }

func (r readOnlyBucket) Get(ctx context.Context, key string, opts *GetOptions) (*Object, error) {
	return r.b.Get(ctx, key, opts)
}

func (r readOnlyBucket) Put(_ context.Context, key string, _ []byte, _ *PutOptions) (string, error) {
	return "", &Error{Op: "put", Key: key, Err: ErrReadOnly}
}

func (r readOnlyBucket) Head(ctx context.Context, key string) (*Info, error) {
	return r.b.Head(ctx, key)
}

func (r readOnlyBucket) Delete(_ context.Context, key string) error {
	return &Error{Op: "delete", Key: key, Err: ErrReadOnly}
}

func (r readOnlyBucket) List(ctx context.Context, prefix, startAfter string, limit int) ([]Info, bool, error) {
	return r.b.List(ctx, prefix, startAfter, limit)
}
