// matrix-js-sdk 43 declares Node >= 22 and calls Promise.withResolvers (Node 22+); this machine runs Node 20.
// Import this module before the SDK so the polyfill exists when the SDK's modules evaluate.
if (typeof Promise.withResolvers !== "function") {
    Object.defineProperty(Promise, "withResolvers", {
        configurable: true,
        writable: true,
        value: function withResolvers() {
            let resolve;
            let reject;
            const promise = new this((res, rej) => {
                resolve = res;
                reject = rej;
            });
            return { promise, resolve, reject };
        },
    });
}
