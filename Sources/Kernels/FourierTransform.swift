import Foundation

/// The discrete Fourier transform of one length, planned once and applied to many signals:
/// X[k] = Σ_j x[j] e^(∓2πi jk/n) (− forward, + inverse; no 1/n scaling). Powers of two run an
/// iterative radix-2 FFT; other lengths Bluestein's chirp-z transform, a convolution through a
/// power-of-two FFT of at least 2n − 1 points. Every length costs O(n log n), so a length read
/// from a request cannot buy quadratic time. The plan's tables and scratch live in a workspace
/// the caller provides (`workspaceCount(length:)` doubles, under 24n), so that the caller can
/// count it against its memory budget. `naiveDFT` is the O(n²) twin the tests compare with.
public struct FourierTransform {
    /// Points per signal.
    public let length: Int
    /// The power-of-two transform size (the length itself, or Bluestein's convolution size).
    let size: Int
    /// cos and sin of 2πk/size (k < size/2); Bluestein only: the chirp e^(−πi k²/n) (k < n), the
    /// FFT of its conjugate laid out for a circular convolution of `size` points, and 2 × size of
    /// scratch.
    let cosines: UnsafeMutablePointer<Double>, sines: UnsafeMutablePointer<Double>
    let chirpReal: UnsafeMutablePointer<Double>, chirpImaginary: UnsafeMutablePointer<Double>
    let filterReal: UnsafeMutablePointer<Double>, filterImaginary: UnsafeMutablePointer<Double>
    let scratch: UnsafeMutablePointer<Double>

    /// The power-of-two size a transform of `length` points runs at.
    static func transformSize(_ length: Int) -> Int {
        if length & (length - 1) == 0 { return length }
        var size = 1
        while size < 2 * length - 1 { size <<= 1 }
        return size
    }

    /// Doubles of workspace a plan for `length` ≥ 1 points needs.
    public static func workspaceCount(length: Int) -> Int {
        let size = transformSize(length)
        return size == length ? size : 5 * size + 2 * length
    }

    /// A plan for `length` ≥ 1 points in `workspace` (`workspaceCount(length:)` doubles), which
    /// must outlive it.
    public init(length: Int, workspace: UnsafeMutablePointer<Double>) {
        self.length = length
        let size = Self.transformSize(length), half = size / 2
        self.size = size
        cosines = workspace
        sines = workspace + half
        chirpReal = workspace + size
        chirpImaginary = chirpReal + length
        filterReal = chirpImaginary + length
        filterImaginary = filterReal + size
        scratch = filterImaginary + size
        for k in 0..<half {
            cosines[k] = Foundation.cos(2 * Double.pi * Double(k) / Double(size))
            sines[k] = Foundation.sin(2 * Double.pi * Double(k) / Double(size))
        }
        guard size != length else { return }
        // k² mod 2n, kept small by stepping: (k+1)² = k² + 2k + 1.
        var square = 0
        for k in 0..<length {
            let angle = Double.pi * Double(square) / Double(length)
            chirpReal[k] = Foundation.cos(angle)
            chirpImaginary[k] = -Foundation.sin(angle)
            square = (square + 2 * k + 1) % (2 * length)
        }
        filterReal.initialize(repeating: 0, count: size)
        filterImaginary.initialize(repeating: 0, count: size)
        for k in 0..<length {
            filterReal[k] = chirpReal[k]; filterImaginary[k] = -chirpImaginary[k]
            if k > 0 { filterReal[size - k] = chirpReal[k]; filterImaginary[size - k] = -chirpImaginary[k] }
        }
        radix2(filterReal, filterImaginary, inverse: false)
    }

    /// Transforms the `length` complex values in `real`/`imaginary` in place.
    public func transform(real: UnsafeMutablePointer<Double>, imaginary: UnsafeMutablePointer<Double>, inverse: Bool) {
        if size == length {
            radix2(real, imaginary, inverse: inverse)
            return
        }
        // The inverse is the conjugate of the forward transform of the conjugate.
        let sign: Double = inverse ? -1 : 1
        let aReal = scratch, aImaginary = scratch + size
        for k in 0..<length {
            let xr = real[k], xi = sign * imaginary[k], cr = chirpReal[k], ci = chirpImaginary[k]
            aReal[k] = xr * cr - xi * ci
            aImaginary[k] = xr * ci + xi * cr
        }
        (aReal + length).initialize(repeating: 0, count: size - length)
        (aImaginary + length).initialize(repeating: 0, count: size - length)
        radix2(aReal, aImaginary, inverse: false)
        for k in 0..<size {
            let ar = aReal[k], ai = aImaginary[k], br = filterReal[k], bi = filterImaginary[k]
            aReal[k] = ar * br - ai * bi
            aImaginary[k] = ar * bi + ai * br
        }
        radix2(aReal, aImaginary, inverse: true)
        let scale = 1 / Double(size)
        for k in 0..<length {
            let yr = aReal[k] * scale, yi = aImaginary[k] * scale, cr = chirpReal[k], ci = chirpImaginary[k]
            real[k] = yr * cr - yi * ci
            imaginary[k] = sign * (yr * ci + yi * cr)
        }
    }

    /// In-place iterative radix-2 FFT of `size` points, e^(−2πi jk/size) forward.
    func radix2(_ real: UnsafeMutablePointer<Double>, _ imaginary: UnsafeMutablePointer<Double>, inverse: Bool) {
        guard size > 1 else { return }
        var j = 0
        for i in 1..<size {
            var bit = size >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { swap(&real[i], &real[j]); swap(&imaginary[i], &imaginary[j]) }
        }
        let sign: Double = inverse ? 1 : -1
        var span = 2
        while span <= size {
            let half = span / 2, step = size / span
            var start = 0
            while start < size {
                for k in 0..<half {
                    let wr = cosines[k * step], wi = sign * sines[k * step]
                    let a = start + k, b = a + half
                    let tr = real[b] * wr - imaginary[b] * wi, ti = real[b] * wi + imaginary[b] * wr
                    real[b] = real[a] - tr; imaginary[b] = imaginary[a] - ti
                    real[a] += tr; imaginary[a] += ti
                }
                start += span
            }
            span <<= 1
        }
    }

    /// The O(n²) definition, the twin `transform` is tested against.
    public static func naiveDFT(real: [Double], imaginary: [Double], inverse: Bool) -> (real: [Double], imaginary: [Double]) {
        let n = real.count
        var outReal = [Double](repeating: 0, count: n), outImaginary = outReal
        let sign: Double = inverse ? 1 : -1
        for k in 0..<n {
            for j in 0..<n {
                let angle = sign * 2 * Double.pi * Double((j * k) % n) / Double(n)
                outReal[k] += real[j] * Foundation.cos(angle) - imaginary[j] * Foundation.sin(angle)
                outImaginary[k] += real[j] * Foundation.sin(angle) + imaginary[j] * Foundation.cos(angle)
            }
        }
        return (outReal, outImaginary)
    }
}
