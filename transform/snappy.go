package transform

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
)

// Arrow's Parquet writer compresses snappy pages with the "better" encoder of klauspost/compress, which spends
// about twice the CPU of the standard encoder for a few percent smaller pages; writing pages was the largest
// single cost of a transform. The standard encoder writes the same Snappy format, which every reader decodes.
func init() {
	orig, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		panic(err) // arrow always registers snappy
	}
	compress.RegisterCodec(compress.Codecs.Snappy, fastSnappy{orig})
}

type fastSnappy struct{ compress.Codec }

func (fastSnappy) Encode(dst, src []byte) []byte { return s2.EncodeSnappy(dst, src) }

func (fastSnappy) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }
