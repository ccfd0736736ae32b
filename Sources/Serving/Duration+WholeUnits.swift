extension Swift.Duration {
    /// Whole nanoseconds (rounded toward zero), saturating at Int64's range (about 292 years).
    public var nanoseconds: Int64 { wholeUnits(perSecond: 1_000_000_000) }

    /// Whole microseconds (rounded toward zero), saturating at Int64's range.
    public var microseconds: Int64 { wholeUnits(perSecond: 1_000_000) }

    /// Whole units of 1/`perSecond` s. Saturates instead of trapping: durations here can come
    /// from a request (a client's timeout).
    private func wholeUnits(perSecond: Int64) -> Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: perSecond)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, sumOverflow) = scaled.addingReportingOverflow(attoseconds / (1_000_000_000_000_000_000 / perSecond))
        return sumOverflow ? (scaled < 0 ? .min : .max) : total
    }
}
