var w,qe,Ot,M,me,ce,He,ie,je,ge,$e,At,Y=Symbol.for("pv"),de={},_e=[],Dt=/^m(i|n|o|s|text|space)$/,be=Array.isArray,ye=_e.slice,B=Object.assign;function W(t){t&&t.parentNode&&t.remove()}function We(t,e,n){var s,r,a,o={},i=arguments.length;for(a in e)a=="key"?s=e[a]:a=="ref"&&typeof t!="function"?r=e[a]:o[a]=e[a];return i>2&&(o.children=i>3?ye.call(arguments,2):n),X(t,o,s,r,null)}function X(t,e,n,s,r){var a={type:t,props:e,key:n,ref:s,__k:null,__:null,__b:0,__e:null,__c:null,constructor:Y,__v:r||++qe,__i:-1,__u:0};return!r&&w.vnode&&w.vnode(a),a}function pe(t){return t.children}function le(t,e){this.props=t,this.context=e,this.__g=0}function U(t,e){if(e==null)return t.__&&U(t.__,t.__i+1);for(var n;e<t.__k.length;e++)if((n=t.__k[e])&&n.__e)return n.__e;return typeof t.type!="function"||t.props.__P?null:U(t)}function It(t){var e,n=t.__v,s=n.__e,r=[],a=[],o=t.__P;o&&((e=B({constructor:Y},n)).__v=n.__v+1,w.vnode&&w.vnode(e),ve(o,e,n,t.__n,o.namespaceURI,32&n.__u?[s]:null,r,s||U(n),32&n.__u,a),e.__v=n.__v,e.__.__k[e.__i]=e,Qe(r,e,a),n.__=n.__e=null,e.__e!=s&&Be(e))}function Be(t){if((t=t.__)&&t.__c&&!t.props.__P)return t.__e=null,t.__k.some(function(e){return e&&(t.__e=e.__e)}),Be(t)}function Ue(t){(8&t.__g||(t.__g|=8,M.push(t),ce++))&&me==w.debounceRendering||((me=w.debounceRendering)||queueMicrotask)(Fe)}function Fe(){try{for(var t,e=1;M.length;)M.length>e&&M.sort(He),t=M.shift(),e=M.length,8&t.__g&&It(t)}finally{(ce=M.length)&&(me||queueMicrotask)(Fe)}}function Je(t,e,n,s,r,a,o,i,_,d,l){var m,h,u,p,b,f,g=s.__k||_e,$=e.length;for(_=Mt(n,e,g,_,$),m=0;m<$;m++)(u=n.__k[m])!=null&&(h=~u.__i&&g[u.__i]||de,u.__i=m,f=ve(t,u,h,r,a,o,i,_,d,l),p=u.__e,(h.ref!=u.ref||8&h.__u)&&(h.ref&&ke(h.ref,null,u,h),u.ref&&l.push(u.ref,u.__c||p,u)),b=b||p,4&u.__u?(_=ze(u,_,t,!h.__v),h.__e&&(h.__e=null)):typeof u.type=="function"&&f!==void 0?_=f:p&&(_=p.nextSibling),u.__u&=-21);return n.__e=b,_}function Mt(t,e,n,s,r){var a,o,i,_,d,l,m,h,u,p=n.length,b=p,f=0,g=0,$=t.__k=Array(r);for(a=0;a<r;a++)(o=e[a])!=null&&typeof o!="boolean"&&typeof o!="function"?(typeof o!="object"||o.constructor===String?o=$[a]=X(null,o):be(o)?o=$[a]=X(pe,{children:o}):o.constructor===Y&&o.__b?o=$[a]=X(o.type,o.props,o.key,o.ref,o.__v):$[a]=o,_=a+f,o.__=t,o.__b=t.__b+1,i=null,~(d=o.__i=Ut(o,n,_,b))&&(b--,(i=n[d])&&(i.__u|=2)),i&&i.__v?(o.__u|=16,d==_-1?f--:d==_+1?f++:d!=_&&(d>_?f--:f++,g=1)):(~d||(r>p?f--:r<p&&f++),typeof o.type!="function"&&(o.__u|=4))):$[a]=null;if(g){for(l=[],m=[],a=0;a<r;a++)if((o=$[a])&&16&o.__u){for(f=0,h=l.length;f<h;)l[u=f+h>>1]<o.__i?f=u+1:h=u;l[f]=o.__i,m[a]=f+1}for(f=l.length;a--;)m[a]&&(m[a]==f?f--:$[a].__u|=4)}if(b)for(a=0;a<p;a++)!(i=n[a])||2&i.__u||(i.__e==s&&(s=U(i)),we(i,i));return s}function ze(t,e,n,s){var r,a,o,i;if(typeof t.type=="function"){if(t.props.__P)return e;if(r=t.__k)for(a=0;a<r.length;a++)r[a]&&(r[a].__=t,e=ze(r[a],e,n,!1));return e}for(e&&!e.parentNode&&(e=U(t))&&!e.parentNode&&(e=null),o=t.__e,i=e;i&&i.nodeType==8;)i=i.nextSibling;for(o!=i&&(!s&&n.moveBefore&&o.parentNode?n.moveBefore(o,e):n.insertBefore(o,e||null)),e=o;(e=e&&e.nextSibling)&&e.nodeType==8&&!e.data.startsWith("$s"););return e}function Ut(t,e,n,s){var r,a=t.key,o=t.type,i=e[n],_=i&&!(2&i.__u);if(i===null&&a==null||_&&a==i.key&&o==i.type)return n;if(s>(_?1:0)){for(r=n-1;r>=0;r--)if((i=e[r])&&!(2&i.__u)&&a==i.key&&o==i.type)return r;for(r=n+1;r<e.length;r++)if((i=e[r])&&!(2&i.__u)&&a==i.key&&o==i.type)return r}return-1}function Le(t,e,n){n==null&&(n=""),e[0]=="-"?t.setProperty(e,n):t[e]=n}function oe(t,e,n,s,r){var a,o;if(e=="style")if(typeof n=="string")t.style.cssText=n;else{if(typeof s=="string"&&(t.style.cssText=s=""),s)for(e in s)n&&e in n||Le(t.style,e);if(n)for(e in n)s&&n[e]==s[e]||Le(t.style,e,n[e])}else if(e[0]=="o"&&e[1]=="n")typeof n!="function"&&(n=null),typeof s!="function"&&(s=null),(t.__e||(t.__e={}))[e]=n,n&&s||(o=$e[e]||($e[e]=Lt(e)),(t.__a||(t.__a={}))[e]=ge,a=e!=(e=e.replace(je,"$1")),(e=e.slice(2))[0]<"a"&&(e=e.toLowerCase()),n?t.addEventListener(e,o,a):t.removeEventListener(e,o,a));else{if(r=="http://www.w3.org/2000/svg")e=e.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(e!="width"&&e!="height"&&e!="href"&&e!="list"&&e!="form"&&e!="tabIndex"&&e!="download"&&e!="rowSpan"&&e!="colSpan"&&e!="role"&&e!="popover"&&e in t)try{return void(t[e]=n??"")}catch{}if(typeof n=="function")return;n==null||n===!1&&e[4]!="-"?t.removeAttribute(e):t.setAttribute(e,e=="popover"&&n==1?"":n)}}function Lt(t){return function(e){var n=this.__e;if(n){if(n=n[t],e[ie]==null)e[ie]=ge++;else if(e[ie]<this.__a[t])return;return n(w.event?w.event(e):e)}}}function ve(t,e,n,s,r,a,o,i,_,d){var l,m,h,u,p,b,f,g,$,k,v,q,D,Q,H,Me,I,j,O=e.type;if(e.constructor!==Y)return null;128&n.__u&&(_=32&n.__u,l=n.__c.__z)&&(e.__u|=_,m=a=[],l.nodeType==8?i=ue(l,a):a.push(l),i=a[0]||i),(l=w.__b)&&l(e);e:if(typeof O=="function"){h=o.length;try{if(g=e.props,$=(l=O.prototype)&&l.render,k=(l=O.contextType)&&s[l.__c],v=l?k?k.props.value:l.__:s,(u=n.__c)?(e.__c=u,2&u.__g&&(u.__g|=1)):($?e.__c=u=new O(g,v):(e.__c=u=new le(g,v),u.constructor=O,u.render=Ht),k&&k.sub(u),u.state||(u.state={}),u.__n=s,u.__g|=8,u.__h=[],u.__k=[]),$&&(u.__s||(u.__s=u.state),O.getDerivedStateFromProps&&(u.__s==u.state&&(u.__s=B({},u.__s)),B(u.__s,O.getDerivedStateFromProps(g,u.__s)))),p=u.props,b=u.state,u.__v=e,n.__c){if(g!==p&&$&&!O.getDerivedStateFromProps&&u.componentWillReceiveProps&&u.componentWillReceiveProps(g,v),e.__v==n.__v&&!(8&u.__g)||!(4&u.__g)&&u.shouldComponentUpdate&&u.shouldComponentUpdate(g,u.__s,v)===!1){e.__v!=n.__v&&(u.props=g,u.state=u.__s,u.__g&=-9),e.__e=n.__e,e.__k=n.__k,e.__k.some(function(R){R&&(R.__=e)}),_e.push.apply(u.__h,u.__k),u.__k=[],u.__h.length&&o.push(u),i=U(n);break e}u.componentWillUpdate&&u.componentWillUpdate(g,u.__s,v),$&&u.componentDidUpdate&&u.__h.push(function(){u.componentDidUpdate(p,b,f)})}else $&&!O.getDerivedStateFromProps&&u.componentWillMount&&u.componentWillMount(),$&&u.componentDidMount&&u.__h.push(u.componentDidMount);u.context=v,u.props=g,u.__P=t,u.__g&=-5,q=w.__r,D=$?25:0;do u.__g&=-9,q&&q(e),l=u.render(u.props,u.state=u.__s,u.context);while(8&u.__g&&++D<25);$&&(_e.push.apply(u.__h,u.__k),u.__k=[]),u.state=u.__s,u.getChildContext&&(s=B({},s,u.getChildContext())),$&&n.__c&&u.getSnapshotBeforeUpdate&&(f=u.getSnapshotBeforeUpdate(p,b)),Q=l&&l.type===pe&&l.key==null?l.props.children:l,g.__P&&(l=i,r=(t=g.__P).namespaceURI,_=a=null,n.props&&n.props.__P!=t&&(n.__k.some(function(R){R&&we(R,R)}),n.__k=null),i=n.__k?U(n,0):null),i=Je(t,be(Q)?Q:[Q],e,n,s,r,a,o,i,_,d),g.__P&&(e.__e=null,i=l),e.__u&=-161,m&&m.some(W),u.__h.length&&o.push(u),1&u.__g&&(u.__g&=-4)}catch(R){if(o.length=h,e.__v=null,_||a)if(R&&R.then){if(e.__u|=128|_,a){for(~(I=a.indexOf(i||void 0))||(I=a.length);(j=a[I-1])&&j.nodeType==8;)I--;for(;I<a.length;I++)if(j=a[I])if(a[I]=null,H){if(j==Me)break}else{if(j.nodeType!=8)break;j.data.startsWith("$s")&&(Me=ue(H=j))}}if(!H){for(;i&&i.nodeType==8&&i.nextSibling;)i=i.nextSibling;H=i}(l=ue(H=e.__c.__z||(e.__c.__z=H)))?(e.__e=H,i=l):e.__e=i,i=i&&i.nextSibling}else a&&a.some(W);else e.__e=n.__e;e.__k||(e.__k=n.__k||[]),R&&R.then||Ve(e),w.__e(R,e,n)}}else i=e.__e=qt(n.__e,e,n,s,r,a,o,_,d,t);return(l=w.diffed)&&l(e),i}function ue(t,e){if(t&&t.nodeType==8&&t.data.startsWith("$s"))for(var n=1;t=t.nextSibling;){if(t.nodeType==8){if(t.data.startsWith("$s"))n++;else if(t.data.startsWith("/$s")&&!--n)return t}e&&e.push(t)}}function Ve(t){t&&(t.__c&&(t.__c.__g|=4),t.__k&&t.__k.some(Ve))}function Qe(t,e,n){for(var s=0;s<n.length;)ke(n[s++],n[s++],n[s++]);w.__c&&w.__c(e,t),t.some(function(r){try{t=r.__h,r.__h=[],t.some(function(a){a.call(r)})}catch(a){w.__e(a,r.__v)}})}function qt(t,e,n,s,r,a,o,i,_,d){var l,m,h,u,p,b,f,g,$=n.props||de,k=e.props,v=e.type;if(v=="svg"?r="http://www.w3.org/2000/svg":v=="math"?r="http://www.w3.org/1998/Math/MathML":r||(r="http://www.w3.org/1999/xhtml"),a){for(l=0;l<a.length;l++)if((p=a[l])&&(v?p.localName==v:p.nodeType==3)){t=p,a[l]=null;break}}if(!t){if(g=d.ownerDocument||document,!v)return g.createTextNode(k);t=g.createElementNS(r,v,k.is?k:d),i&&(w.__m&&w.__m(e,a),i=!1),a=null}if(v){if(d=v=="template"&&t.content||t,a=v=="textarea"&&k.defaultValue!=null?null:a&&ye.call(d.childNodes),!i&&a)for($={},l=0;l<t.attributes.length;l++)$[(p=t.attributes[l]).name]=p.value;for(l in $)p=$[l],l=="dangerouslySetInnerHTML"?h=p:l=="children"||l in k||l=="value"&&"defaultValue"in k||l=="checked"&&"defaultChecked"in k||oe(t,l,null,p,r);for(l in k)p=k[l],l=="children"?u=p:l=="dangerouslySetInnerHTML"?m=p:l=="value"?b=p:l=="checked"?f=p:i&&typeof p!="function"||$[l]===p||oe(t,l,p,$[l],r);m?(i||h&&(m.__html==h.__html||m.__html==t.innerHTML)||(t.innerHTML=m.__html),e.__k=[]):(h&&(t.textContent=""),(v=="foreignObject"||r=="http://www.w3.org/1998/Math/MathML"&&Dt.test(v))&&(r="http://www.w3.org/1999/xhtml"),Je(d,be(u)?u:[u],e,n,s,r,a,o,a?a[0]:n.__k&&U(n,0),i,_),a&&a.some(W)),i&&v!="textarea"||(l="value",v=="progress"&&b==null?t.removeAttribute(l):b==null||b===t[l]&&(v!="progress"||b)||oe(t,l,b,$[l],r),l="checked",f!=null&&f!=t[l]&&oe(t,l,f,$[l],r))}else $===k||i&&t.data==k||(t.data=k);return t}function ke(t,e,n,s){try{typeof t=="function"?e?e.__x=t(e)||1:s&&(s=s.__c||s.__e)&&(e=s.__x)&&(s.__x=null,typeof e=="function"?e():t(null)):t.current=e}catch(r){w.__e(r,n)}}function we(t,e,n){var s,r,a,o;if(w.unmount&&w.unmount(t),!(s=t.ref)||s.current&&s.current!=t.__e||ke(s,null,e,t),s=t.__c){if(s.componentWillUnmount)try{s.componentWillUnmount()}catch(i){w.__e(i,e)}s.__P=s.__n=null}if(s=t.__k)for(o=0;o<s.length;o++)s[o]&&we(s[o],e,typeof t.type!="function"||n&&!t.props.__P);!n&&(s=t.__c)&&(s=s.__z)&&(r=ue(s,a=[]))&&(s==t.__e&&a.some(W),W(r),W(s)),n||W(t.__e),t.__e=t.__c=t.__=null}function Ht(t,e,n){return this.constructor(t,n)}function Ge(t,e){var n,s,r,a;w.__&&w.__(t,e),e.nodeType==9&&(e=e.documentElement),s=(n=t&&32&t.__u)?null:e.__k,e.__k=X(pe,{children:[t]}),r=[],a=[],ve(e,e.__k,s||de,de,e.namespaceURI,s?null:e.firstChild?ye.call(e.childNodes):null,r,s?s.__e:e.firstChild,n,a),Qe(r,e.__k,a),e.__k.props.children=null}w={__e:function(t,e,n,s){for(var r,a,o;e=e.__;)if((r=e.__c)&&!(1&r.__g)){r.__g|=4;try{if((o=(a=r.constructor)&&a.getDerivedStateFromError)&&r.setState(a.getDerivedStateFromError(t)),r.componentDidCatch&&(r.componentDidCatch(t,s||{}),o=1),o&&8&r.__g)return void(r.__g|=2)}catch(i){t=i}}throw ce=0,t}},qe=0,Ot=function(t){return t!=null&&t.constructor===Y},le.prototype.setState=function(t,e){var n=this.__s;n&&n!=this.state||(n=this.__s=B({},this.state)),typeof t=="function"&&(t=t(B({},n),this.props)),t&&(B(n,t),this.__v&&(e&&this.__k.push(e),Ue(this)))},le.prototype.forceUpdate=function(t){this.__v&&(this.__g|=4,t&&this.__h.push(t),Ue(this))},le.prototype.render=pe,M=[],ce=0,He=function(t,e){return t.__v.__b-e.__v.__b},ie=Symbol(),je=/(PointerCapture)$|Capture$/i,ge=0,$e={},At=0;var ee,T,xe,Ke,Se=Object.is,fe=0,rt=[],Te=[],S=w,Xe=S.__b,Ye=S.__r,Ze=S.diffed,et=S.__c,tt=S.unmount,nt=S.__;function Ne(t,e){S.__h&&S.__h(T,t,fe||e),fe=0;var n=T.__H||(T.__H={__:[],__h:[]});return t>=n.__.length&&n.__.push({}),n.__[t]}function y(t){return fe=1,jt(it,t)}function jt(t,e,n){var s=Ne(ee++,2);if(s.t=t,!s.__c&&(s.__=[n?n(e):it(void 0,e),function(a){var o=(s.__N||s.__)[0],i=s.t(o,a);Se(o,i)||(s.__N=[i,s.__[1]],s.__c.setState({}))}],s.__c=T,!T.__f)){T.__f=!0;var r=T.shouldComponentUpdate;T.shouldComponentUpdate=function(a,o,i){var _=this.__H;if(!_)return!0;var d=!1,l=this.props!=a;if(_.__.some(function(h){h.__N&&(d=!0,Se(h.__[0],h.__N[0])||(l=!0))}),r){var m=r.call(this,a,o,i);return d?m||l:m}return!d||l}}return s.__}function E(t,e){var n=Ne(ee++,3);!S.__s&&ot(n.__H,e)&&(n.__P=!0,n.__=t,n.u=e,T.__H.__h.push(n))}function Re(t){return fe=5,Wt(function(){return{current:t}},[])}function Wt(t,e){var n=Ne(ee++,7);return ot(n.__H,e)&&(n.__=t(),n.__H=e),n.__}function Bt(){var t;do{for(;t=Te.shift();)try{Z(t)}catch(n){S.__e(n,{__:(t=t.__P)&&t.__v})}for(;t=rt.shift();){var e=t.__H;if(t.__P&&e)try{e.__h.some(Z),e.__h.some(Ce),e.__h=[]}catch(n){e.__h=[],S.__e(n,t.__v)}}}while(Te.length)}S.__b=function(t){T=null,Xe&&Xe(t)},S.__=function(t,e){t&&e.__k&&e.__k.__m&&(t.__m=e.__k.__m),nt&&nt(t,e)},S.__r=function(t){Ye&&Ye(t),ee=0;var e=(T=t.__c).__H;e&&(xe==T?T.__h=[]:(e.__h.some(Z),e.__h.some(Ce),ee=0),e.__h=[],e.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})),xe=T},S.diffed=function(t){Ze&&Ze(t);var e=t.__c;e&&e.__H&&(e.__H.__h.length&&at(rt.push(e)),e.__H.__.some(function(n){n.u&&(n.__H=n.u)})),xe=T=null},S.__c=function(t,e){e.some(function(n){try{n.__h.some(Z),n.__h=n.__h.filter(function(s){return!s.__||Ce(s)})}catch(s){n.__h=[function(){throw s}]}}),et&&et(t,e)},S.unmount=function(t){tt&&tt(t);var e,n,s=t.__c;s&&s.__H&&(s.__H.__.some(function(r){try{if(r.__P&&r.__c){if(n===void 0){for(n=t.__;n&&(!n.__c||!n.__c.__P);)n=n.__;n=n&&n.__c}r.__P=n,at(Te.push(r))}else Z(r)}catch(a){e=a}}),s.__H=void 0,e&&S.__e(e,s.__v))};var st=typeof requestAnimationFrame=="function";function Ft(t){var e,n=function(){clearTimeout(s),st&&cancelAnimationFrame(e),setTimeout(t)},s=setTimeout(n,35);st&&(e=requestAnimationFrame(n))}function at(t){t!=1&&Ke==S.requestAnimationFrame||((Ke=S.requestAnimationFrame)||Ft)(Bt)}function Z(t){var e=T,n=t.__c;typeof n=="function"&&(t.__c=void 0,n()),T=e}function Ce(t){var e=T;t.__c=t.__(),T=e}function ot(t,e){return!t||t.length!=e.length||e.some(function(n,s){return!Se(n,t[s])})}function it(t,e){return typeof e=="function"?e(t):e}var Pe="fluid.token";function Oe(){return sessionStorage.getItem(Pe)||""}function lt(t){t?sessionStorage.setItem(Pe,t):sessionStorage.removeItem(Pe)}var he=class extends Error{constructor(e,n){super(Jt(n)||`HTTP ${e}`),this.status=e,this.detail=n}};function Jt(t){return t==null?"":typeof t=="string"?t:Array.isArray(t)?t.map(e=>{let n=Array.isArray(e.loc)?e.loc.filter(s=>s!=="body").join("."):"";return n?`${n}: ${e.msg}`:e.msg||JSON.stringify(e)}).join("; "):JSON.stringify(t)}function ut(t){let e={Accept:"application/json",...t},n=Oe();return n&&(e.Authorization=`Bearer ${n}`),e}var Ee=new Set;function ct(t){return Ee.add(t),()=>Ee.delete(t)}async function Ae(t,e,n,s){let r={method:t,headers:ut(n===void 0?{}:{"Content-Type":"application/json"}),signal:s};n!==void 0&&(r.body=JSON.stringify(n));let a=await fetch(e,r),o=await a.text(),i=null;try{i=o?JSON.parse(o):null}catch{i=o}if(!a.ok)throw a.status===401&&Ee.forEach(_=>_()),new he(a.status,i&&typeof i=="object"?i.detail:i);return i}var x=(t,e)=>Ae("GET",t,void 0,e),te=(t,e)=>Ae("POST",t,e??{}),dt=(t,e)=>Ae("PATCH",t,e);function G(t){let e=new URLSearchParams;for(let[s,r]of Object.entries(t))Array.isArray(r)?r.forEach(a=>e.append(s,String(a))):r!=null&&r!==""&&e.set(s,String(r));let n=e.toString();return n?`?${n}`:""}function _t(t,e,n){let s=new AbortController;return(async()=>{try{let r=await fetch(t,{headers:ut({Accept:"text/event-stream"}),signal:s.signal});if(!r.ok||!r.body)throw new he(r.status,null);let a=r.body.getReader(),o=new TextDecoder,i="";for(;;){let{value:_,done:d}=await a.read();if(d)break;i+=o.decode(_,{stream:!0});let l;for(;(l=i.indexOf(`

`))>=0;){let m=i.slice(0,l);i=i.slice(l+2);let h="message",u=[];for(let p of m.split(`
`))p.startsWith("event:")?h=p.slice(6).trim():p.startsWith("data:")&&u.push(p.slice(5).replace(/^ /,""));u.length&&e(h,JSON.parse(u.join(`
`)))}}n(null)}catch(r){s.signal.aborted||n(r)}})(),()=>s.abort()}var ft=function(t,e,n,s){var r;e[0]=0;for(var a=1;a<e.length;a++){var o=e[a++],i=e[a]?(e[0]|=o?1:2,n[e[a++]]):e[++a];o===3?s[0]=i:o===4?s[1]=Object.assign(s[1]||{},i):o===5?(s[1]=s[1]||{})[e[++a]]=i:o===6?s[1][e[++a]]+=i+"":o?(r=t.apply(i,ft(t,i,n,["",null])),s.push(r),i[0]?e[0]|=2:(e[a-2]=0,e[a]=r)):s.push(i)}return s},pt=new Map;function ht(t){var e=pt.get(this);return e||(e=new Map,pt.set(this,e)),(e=ft(this,e.get(t)||(e.set(t,e=(function(n){for(var s,r,a=1,o="",i="",_=[0],d=function(h){a===1&&(h||(o=o.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?_.push(0,h,o):a===3&&(h||o)?(_.push(3,h,o),a=2):a===2&&o==="..."&&h?_.push(4,h,0):a===2&&o&&!h?_.push(5,0,!0,o):a>=5&&((o||!h&&a===5)&&(_.push(a,0,o,r),a=6),h&&(_.push(a,h,0,r),a=6)),o=""},l=0;l<n.length;l++){l&&(a===1&&d(),d(l));for(var m=0;m<n[l].length;m++)s=n[l][m],a===1?s==="<"?(d(),_=[_],a=3):o+=s:a===4?o==="--"&&s===">"?(a=1,o=""):o=s+o[0]:i?s===i?i="":o+=s:s==='"'||s==="'"?i=s:s===">"?(d(),a=1):a&&(s==="="?(a=5,r=o,o=""):s==="/"&&(a<5||n[l][m+1]===">")?(d(),a===3&&(_=_[0]),a=_,(_=_[0]).push(2,0,a),a=0):s===" "||s==="	"||s===`
`||s==="\r"?(d(),a=2):o+=s),a===3&&o==="!--"&&(a=4,_=_[0])}return d(),_})(t)),e),arguments,[])).length>1?e:e[0]}var c=ht.bind(We),mt=["success","failure","aborted","rate_limited","interrupted"],$t=["init","queued","running",...mt];function F(t){return mt.includes(t)}function J(t,e){let n=t&&t.roles||[];return n.includes("admin")||n.includes(e)}function C(t,e,n){let[s,r]=y({data:null,error:null,loading:!0}),[a,o]=y(0);return E(()=>{let i=null,_=!1,d=new AbortController,l=async()=>{try{let m=await t(d.signal);_||r({data:m,error:null,loading:!1})}catch(m){!_&&m.name!=="AbortError"&&r(h=>({...h,error:m,loading:!1}))}!_&&e&&(i=setTimeout(l,e))};return l(),()=>{_=!0,clearTimeout(i),d.abort()}},[...n,a]),{...s,reload:()=>o(i=>i+1)}}function zt(t){let e=(t||"").replace(/^#\/?/,""),[n,s=""]=e.split("?");return{parts:n.split("/").filter(Boolean).map(decodeURIComponent),params:Object.fromEntries(new URLSearchParams(s))}}function gt(){let[t,e]=y(location.hash);return E(()=>{let n=()=>e(location.hash);return window.addEventListener("hashchange",n),()=>window.removeEventListener("hashchange",n)},[]),zt(t)}function z(t,e){let n=new URLSearchParams;for(let[r,a]of Object.entries(e||{}))a&&n.set(r,a);let s=n.toString();location.hash=`#/${t}${s?`?${s}`:""}`}function ne(t=1e3){let[e,n]=y(Date.now());return E(()=>{let s=setInterval(()=>n(Date.now()),t);return()=>clearInterval(s)},[t]),e}function P(t){if(!t)return"—";let e=new Date(t);return Number.isNaN(e.getTime())?String(t):e.toLocaleString()}function K(t,e=Date.now()){if(!t)return"—";let n=Math.round((e-new Date(t).getTime())/1e3),s=n<0,r=Math.abs(n),a=r<60?`${r}s`:r<3600?`${Math.floor(r/60)}m ${r%60}s`:`${Math.floor(r/3600)}h ${Math.floor(r%3600/60)}m`;return s?`in ${a}`:`${a} ago`}function se(t,e){if(!t)return"—";let n=(e?new Date(e):new Date).getTime()-new Date(t).getTime();return n<1e3?`${Math.max(n,0)} ms`:n<6e4?`${(n/1e3).toFixed(1)} s`:`${Math.floor(n/6e4)}m ${Math.round(n%6e4/1e3)}s`}function L(t){return t==null?"—":t<1?`${Math.round(t*1e3)} ms`:`${t.toFixed(2)} s`}function ae(t){return JSON.stringify(t,null,2)}function re({state:t}){return c`<span class="state state-${t}" data-state=${t}>${t}</span>`}function A({id:t}){return t?c`<a class="mono" href=${`#/runs/${encodeURIComponent(t)}`} title=${t}>${t.slice(0,12)}</a>`:c`<span class="muted">—</span>`}function N({error:t}){return t?c`<p class="error" role="alert">${t.message||String(t)}</p>`:null}var V=30,bt=500,yt=20;async function Vt(t){let e=Date.now(),n=e-V*6e4,s=new Array(V).fill(0),r=new Array(V).fill(0),a="",o=!0;for(let i=0;;i++){if(i===yt){o=!1;break}let _=await x(`tasks-history${G({start:new Date(n).toISOString(),limit:bt,cursor:a})}`,t);for(let d of _.data){if(!F(d.state)||!d.end)continue;let l=new Date(d.end).getTime();if(l<n||l>e)continue;let m=Math.min(V-1,Math.floor((l-n)/6e4));(d.state==="failure"?r:s)[m]+=1}if(a=_.cursor,!a)break}return{finished:s,failed:r,complete:o,now:e}}function Qt(t){let e=Re(null),[n,s]=y(t);return E(()=>{if(!e.current)return;let r=new ResizeObserver(([a])=>s(Math.max(200,Math.round(a.contentRect.width))));return r.observe(e.current),()=>r.disconnect()},[]),[e,n]}function Gt({data:t}){let[e,n]=Qt(600),s=180,r=34,a=20,o=8,i=Math.max(1,...t.finished.map((m,h)=>m+t.failed[h])),_=(n-r)/V,d=m=>(s-o-a)*m/i,l=t.finished.map((m,h)=>{let u=t.failed[h],p=r+h*_+1,b=d(m),f=d(u),g=V-h;return c`<g key=${h}>
      <title>${`${g-1}–${g} min ago: ${m} finished, ${u} failed`}</title>
      <rect class="bar-ok" x=${p} width=${_-2} y=${s-a-b} height=${b} />
      <rect class="bar-failed" x=${p} width=${_-2} y=${s-a-b-f} height=${f} />
    </g>`});return c`<figure class="chart" ref=${e}>
    <svg viewBox=${`0 0 ${n} ${s}`} role="img" aria-label="runs finished and failed per minute, last 30 minutes" data-testid="throughput-chart">
      <line class="axis" x1=${r} x2=${n} y1=${s-a} y2=${s-a} />
      <line class="axis" x1=${r} x2=${r} y1=${o} y2=${s-a} />
      <text class="tick" x=${r-4} y=${o+8} text-anchor="end">${i}</text>
      <text class="tick" x=${r-4} y=${s-a} text-anchor="end">0</text>
      <text class="tick" x=${r} y=${s-4}>-30 min</text>
      <text class="tick" x=${r+(n-r)/2} y=${s-4} text-anchor="middle">-15 min</text>
      <text class="tick" x=${n} y=${s-4} text-anchor="end">now</text>
      ${l}
    </svg>
    <figcaption>
      <span class="legend legend-ok"></span> finished (${t.finished.reduce((m,h)=>m+h,0)})
      <span class="legend legend-failed"></span> failed (${t.failed.reduce((m,h)=>m+h,0)})
      ${t.complete?"":c` <span class="muted">(more runs than shown: the newest ${bt*yt})</span>`}
    </figcaption>
  </figure>`}function vt(){let t=ne(),e=C(d=>x("tasks-status",d),2e3,[]),n=C(d=>x("tasks",d),2e3,[]),s=C(d=>x("workers",d),2e3,[]),r=C(d=>x("schedules",d),5e3,[]),a=C(Vt,1e4,[]),o=e.data?e.data.queue:{},i=(n.data||[]).filter(d=>d.running>0),_=r.data?r.data.lateness:null;return c`<section class="page" data-page="overview">
    <h1>Overview</h1>
    <${N} error=${e.error||n.error||s.error} />
    <div class="cards">
      <div class="card" data-testid="queue-depth">
        <h2>Queued</h2>
        <dl class="numbers">
          ${["high","medium","low"].map(d=>c`<div key=${d}><dt>${d}</dt><dd data-priority=${d}>${o[d]??"…"}</dd></div>`)}
        </dl>
      </div>
      <div class="card" data-testid="running-now">
        <h2>Running now</h2>
        <p class="big">${n.data?i.reduce((d,l)=>d+l.running,0):"…"}</p>
        <ul class="plain">
          ${i.map(d=>c`<li key=${d.name}><a href=${`#/runs?task=${encodeURIComponent(d.name)}&state=running`}>${d.name}</a>: ${d.running}</li>`)}
        </ul>
      </div>
      <div class="card" data-testid="dead-letters">
        <h2>Dead letters</h2>
        <p class="big">${e.data?e.data.dead_letters:"…"}</p>
        <p class="muted">snapshots history refused</p>
      </div>
      <div class="card" data-testid="scheduler">
        <h2>Scheduler</h2>
        ${r.error?c`<p class="muted">${r.error.message}</p>`:c`<p>leader <span class="mono">${r.data?r.data.leader_id||"none":"…"}</span></p>
              ${_&&c`<p class="muted">lateness over ${_.count} slots: p50 ${L(_.p50)}, p99 ${L(_.p99)}, max ${L(_.max)}</p>`}
              <a href="#/schedules">schedules</a>`}
      </div>
    </div>
    <div class="card wide">
      <h2>Runs per minute, last ${V} minutes</h2>
      <${N} error=${a.error} />
      ${a.data?c`<${Gt} data=${a.data} />`:c`<p class="muted">loading…</p>`}
    </div>
    <div class="card wide">
      <h2>Workers</h2>
      ${s.data&&s.data.length===0?c`<p class="muted">no live worker</p>`:null}
      <ul class="plain workers-load">
        ${(s.data||[]).map(d=>c`<li key=${d.worker_id}>
            <span class="mono">${d.worker_id}</span> <span class="tag">${d.kind}</span>
            <${De} running=${d.running} concurrency=${d.concurrency} />
            <span class="muted">seen ${K(d.last_seen,t)}</span>
          </li>`)}
      </ul>
    </div>
  </section>`}function De({running:t,concurrency:e}){let n=e?Math.min(1,t/e):0;return c`<span class="load" title=${`${t} of ${e||"?"} slots busy`}>
    <span class="load-bar"><span style=${`width:${Math.round(n*100)}%`}></span></span>
    ${t}/${e||"?"}
  </span>`}async function Kt(t,e){if(!t.queued)return[];let n=[],s="";for(let r=0;r<4;r++){let a=await x(`tasks-history${G({start:t.queued,limit:500,cursor:s})}`,e);if(n.push(...a.data.filter(o=>o.from_run_id===t.id)),s=a.cursor,!s)break}return n}function kt({id:t,me:e}){let[n,s]=y(null),[r,a]=y(null),[o,i]=y(!1),[_,d]=y(""),[l,m]=y(""),[h,u]=y(!1);E(()=>{let f=()=>{},g=!1;return s(null),a(null),x(`runs/${encodeURIComponent(t)}`).then($=>{g||(s($),!F($.state)&&(i(!0),f=_t(`runs/${encodeURIComponent(t)}/events`,(k,v)=>s(v),async k=>{if(i(!1),!g){k&&a(k);try{s(await x(`runs/${encodeURIComponent(t)}`))}catch(v){a(v)}}})))}).catch($=>!g&&a($)),()=>{g=!0,f()}},[t]);let p=C(f=>n?Kt(n,f):Promise.resolve([]),n&&!F(n.state)?5e3:0,[n?n.id:"",n?F(n.state):!1]);if(r&&!n)return c`<section class="page"><h1>Run</h1><${N} error=${r} /></section>`;if(!n)return c`<section class="page"><h1>Run</h1><p class="muted">loading…</p></section>`;let b=async f=>{u(!0),d("");try{if(f==="abort"){let g=await te(`runs/${encodeURIComponent(n.id)}/abort`,{reason:l});s(g),d("abort requested")}else{let g=await te(`runs/${encodeURIComponent(n.id)}/rerun`);z(`runs/${g.id}`)}}catch(g){d(g.message)}finally{u(!1)}};return c`<section class="page" data-page="run" data-run=${n.id}>
    <h1>Run <span class="mono">${n.id}</span></h1>
    <p class="headline">
      <a href=${`#/runs?task=${encodeURIComponent(n.task)}`}>${n.task}</a>
      <${re} state=${n.state} />
      ${o?c`<span class="muted" data-testid="live">● live</span>`:null}
    </p>
    <${N} error=${r} />
    <div class="actions">
      ${!F(n.state)&&J(e,"operate")?c`<input aria-label="abort reason" placeholder="reason" value=${l} onInput=${f=>m(f.currentTarget.value)} />
            <button class="danger" disabled=${h} onClick=${()=>b("abort")}>Abort</button>`:null}
      ${J(e,"queue")?c`<button disabled=${h} onClick=${()=>b("rerun")}>Re-run</button>`:null}
      ${_?c`<span class="note" role="status">${_}</span>`:null}
    </div>
    <div class="cards">
      <div class="card">
        <h2>Timings</h2>
        <dl class="facts">
          <dt>queued</dt><dd>${P(n.queued)}</dd>
          <dt>started</dt><dd>${P(n.start)}</dd>
          <dt>ended</dt><dd>${P(n.end)}</dd>
          <dt>waited</dt><dd>${se(n.queued,n.start)}</dd>
          <dt>took</dt><dd>${n.start?se(n.start,n.end):"—"}</dd>
        </dl>
      </div>
      <div class="card">
        <h2>Where</h2>
        <dl class="facts">
          <dt>priority</dt><dd>${n.priority}</dd>
          <dt>attempt</dt><dd data-testid="attempt">${n.attempt}</dd>
          <dt>worker</dt><dd class="mono">${n.worker_id||"—"}</dd>
          <dt>trace</dt><dd class="mono" data-testid="trace-id">${n.trace_id||"—"}</dd>
          <dt>from run</dt><dd><${A} id=${n.from_run_id} /></dd>
          <dt>root run</dt><dd>${n.root_run_id&&n.root_run_id!==n.id?c`<${A} id=${n.root_run_id} />`:c`<span class="muted">this one</span>`}</dd>
          <dt>reason</dt><dd>${n.reason||"—"}</dd>
        </dl>
      </div>
    </div>
    <div class="card wide">
      <h2>Params <span class="muted">(secrets masked)</span></h2>
      <pre data-testid="params">${ae(n.params)}</pre>
    </div>
    <div class="card wide">
      <h2>Result</h2>
      <pre data-testid="result">${n.result===null||n.result===void 0?"—":ae(n.result)}</pre>
    </div>
    ${n.error?c`<div class="card wide failed" data-testid="run-error">
          <h2>Error: ${n.error.type}</h2>
          <p>${n.error.message}</p>
          ${n.error.traceback?c`<details open><summary>traceback</summary><pre>${n.error.traceback}</pre></details>`:null}
        </div>`:null}
    <div class="card wide">
      <h2>Output tail</h2>
      ${n.output_tail.length?c`<pre class="output" data-testid="output">${n.output_tail.join(`
`)}</pre>`:c`<p class="muted">no output</p>`}
    </div>
    <div class="card wide">
      <h2>Runs it queued</h2>
      ${p.data&&p.data.length?c`<ul class="plain">${p.data.map(f=>c`<li key=${f.id}><${A} id=${f.id} /> ${f.task} <${re} state=${f.state} /></li>`)}</ul>`:c`<p class="muted">${p.loading?"looking…":"none"}</p>`}
    </div>
  </section>`}var Xt=["task","state","start","end","params","tags"],Yt=25;function wt(t){if(!t)return"";let e=new Date(t);return Number.isNaN(e.getTime())?"":e.toISOString()}function xt({params:t}){let e=Object.fromEntries(Xt.map(p=>[p,t[p]||""])),[n,s]=y([]),[r,a]=y(""),[o,i]=y(e),_=C(p=>x("tasks",p),0,[]),d=C(p=>x(`tasks-history${G({task:e.task,state:e.state,start:wt(e.start),end:wt(e.end),params:e.params,tags:e.tags.split(",").map(b=>b.trim()).filter(Boolean),limit:Yt,cursor:r})}`,p),2e3,[r]),l="";if(o.params)try{let p=JSON.parse(o.params);(typeof p!="object"||p===null||Array.isArray(p))&&(l="params must be a JSON object")}catch{l="params is not valid JSON"}let m=p=>{p.preventDefault(),l||z("runs",o)},h=p=>({value:o[p],onInput:b=>i({...o,[p]:b.currentTarget.value})}),u=d.data?d.data.data:[];return c`<section class="page" data-page="runs">
    <h1>Runs</h1>
    <form class="filters" onSubmit=${m} data-testid="run-filters">
      <label>Task
        <select name="task" ...${h("task")}>
          <option value="">any</option>
          ${(_.data||[]).map(p=>c`<option key=${p.name} value=${p.name}>${p.name}</option>`)}
          ${o.task&&!(_.data||[]).some(p=>p.name===o.task)?c`<option value=${o.task}>${o.task}</option>`:null}
        </select>
      </label>
      <label>State
        <select name="state" ...${h("state")}>
          <option value="">any</option>
          ${$t.map(p=>c`<option key=${p} value=${p}>${p}</option>`)}
        </select>
      </label>
      <label>Queued from <input type="datetime-local" name="start" step="1" ...${h("start")} /></label>
      <label>to <input type="datetime-local" name="end" step="1" ...${h("end")} /></label>
      <label>Params contain (JSON) <input name="params" placeholder='{"name": "Ada"}' ...${h("params")} /></label>
      <label title="runs of tasks with any of these tags, comma-separated">Tags <input name="tags" placeholder="billing" ...${h("tags")} /></label>
      <div class="buttons">
        <button type="submit" disabled=${!!l}>Filter</button>
        <button type="button" class="secondary" onClick=${()=>z("runs",{})}>Clear</button>
      </div>
      ${l?c`<p class="error">${l}</p>`:null}
    </form>
    <${N} error=${d.error} />
    <div class="table-wrap">
      <table class="stack runs" data-testid="runs-table">
        <thead><tr><th>Run</th><th>Task</th><th>State</th><th>Queued</th><th>Took</th><th>Attempt</th></tr></thead>
        <tbody>
          ${u.map(p=>c`<tr key=${p.id} data-run=${p.id} data-task=${p.task}>
              <td data-label="Run"><${A} id=${p.id} /></td>
              <td data-label="Task">${p.task}</td>
              <td data-label="State"><${re} state=${p.state} /></td>
              <td data-label="Queued">${P(p.queued)}</td>
              <td data-label="Took">${se(p.start,p.end)}</td>
              <td data-label="Attempt">${p.attempt}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>
    ${d.data&&u.length===0?c`<p class="muted">no run matches</p>`:null}
    <div class="pager">
      <button
        class="secondary"
        disabled=${n.length===0}
        onClick=${()=>{a(n[n.length-1]),s(n.slice(0,-1))}}
      >
        ← Newer
      </button>
      <span class="muted">page ${n.length+1} · refreshed every 2 s</span>
      <button
        class="secondary"
        disabled=${!d.data||!d.data.cursor}
        onClick=${()=>{s([...n,r]),a(d.data.cursor)}}
      >
        Older →
      </button>
    </div>
  </section>`}function St(){let t=ne(),e=C(s=>x("schedules",s),2e3,[]),n=e.data;return c`<section class="page" data-page="schedules">
    <h1>Schedules</h1>
    <${N} error=${e.error} />
    ${n?c`<p>
            leader <span class="mono" data-testid="leader">${n.leader_id||"none"}</span>
            ${n.leader_since?c` since ${P(n.leader_since)}`:null} · lateness over ${n.lateness.count} slots: p50
            ${L(n.lateness.p50)}, p99 ${L(n.lateness.p99)}, max ${L(n.lateness.max)}
          </p>
          <div class="table-wrap">
            <table class="stack" data-testid="schedules-table">
              <thead><tr><th>Task</th><th>Schedule</th><th>Enabled</th><th>Next fire</th><th>Last slot</th><th>Last run</th><th>Missed</th><th>Last error</th></tr></thead>
              <tbody>
                ${n.schedules.map(s=>c`<tr key=${s.task} data-task=${s.task}>
                    <td data-label="Task"><a href=${`#/tasks/${encodeURIComponent(s.task)}`}>${s.task}</a></td>
                    <td data-label="Schedule">${s.schedule}</td>
                    <td data-label="Enabled">${s.enabled?"yes":"no"}</td>
                    <td data-label="Next fire" title=${P(s.next_fire)}>${s.next_fire?K(s.next_fire,t):"—"}</td>
                    <td data-label="Last slot" title=${P(s.last_slot)}>${s.last_slot?K(s.last_slot,t):"—"}</td>
                    <td data-label="Last run"><${A} id=${s.last_run_id} /></td>
                    <td data-label="Missed" class=${s.missed_slots?"warn":""}>${s.missed_slots}</td>
                    <td data-label="Last error" class="error-text">${s.last_error||""}</td>
                  </tr>`)}
              </tbody>
            </table>
          </div>
          ${n.schedules.length===0?c`<p class="muted">no scheduled task</p>`:null}`:c`<p class="muted">loading…</p>`}
  </section>`}function Tt(){let t=ne(),e=C(n=>x("workers",n),2e3,[]);return c`<section class="page" data-page="workers">
    <h1>Workers</h1>
    <${N} error=${e.error} />
    <div class="table-wrap">
      <table class="stack" data-testid="workers-table">
        <thead><tr><th>Worker</th><th>Kind</th><th>Tasks</th><th>Load</th><th>Last seen</th></tr></thead>
        <tbody>
          ${(e.data||[]).map(n=>c`<tr key=${n.worker_id} data-worker=${n.worker_id}>
              <td data-label="Worker" class="mono">${n.worker_id}</td>
              <td data-label="Kind"><span class="tag">${n.kind}</span></td>
              <td data-label="Tasks" class="task-list">${n.tasks.join(", ")}</td>
              <td data-label="Load"><${De} running=${n.running} concurrency=${n.concurrency} /></td>
              <td data-label="Last seen" title=${P(n.last_seen)}>${K(n.last_seen,t)}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>
    ${e.data&&e.data.length===0?c`<p class="muted">no live worker</p>`:null}
  </section>`}function Ct(){let t=C(n=>x("dead-letters?limit=100",n),5e3,[]),e=t.data?t.data.data:[];return c`<section class="page" data-page="dead-letters">
    <h1>Dead letters</h1>
    <p class="muted">Run snapshots history refused, kept until retried or dropped (the newest 100).</p>
    <${N} error=${t.error} />
    <div class="table-wrap">
      <table class="stack">
        <thead><tr><th>Run</th><th>Task</th><th>State</th><th>Reason</th><th>When</th><th>Bytes</th></tr></thead>
        <tbody>
          ${e.map(n=>c`<tr key=${n.id}>
              <td data-label="Run"><${A} id=${n.run_id} /></td>
              <td data-label="Task">${n.task}</td>
              <td data-label="State">${n.state}</td>
              <td data-label="Reason">${n.reason}</td>
              <td data-label="When">${P(n.time)}</td>
              <td data-label="Bytes">${n.size_bytes}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>
    ${t.data&&e.length===0?c`<p class="muted">none</p>`:null}
  </section>`}function Nt({task:t,me:e,onChanged:n}){let[s,r]=y(!1),[a,o]=y(null);if(!J(e,"operate"))return c`<span class="muted" data-testid=${`enabled-${t.name}`}>${t.enabled?"enabled":"disabled"}</span>`;let _=async()=>{r(!0),o(null);try{n(await dt(`tasks/${encodeURIComponent(t.name)}`,{enabled:!t.enabled}))}catch(d){o(d)}finally{r(!1)}};return c`<label class="switch" title="enable or disable the task">
    <input
      type="checkbox"
      role="switch"
      aria-label=${`${t.name} enabled`}
      data-testid=${`toggle-${t.name}`}
      checked=${t.enabled}
      disabled=${s}
      onChange=${_}
    />
    <span>${t.enabled?"enabled":"disabled"}</span>
    ${a?c`<span class="error">${a.message}</span>`:null}
  </label>`}function Rt({me:t}){let e=C(i=>x("tasks",i),5e3,[]),[n,s]=y({of:null,tasks:{}}),r=n.of===e.data?n.tasks:{},a=(e.data||[]).map(i=>r[i.name]||i),o=i=>{s({of:e.data,tasks:{...r,[i.name]:i}}),e.reload()};return c`<section class="page" data-page="tasks">
    <h1>Tasks</h1>
    <${N} error=${e.error} />
    <div class="table-wrap">
      <table class="stack" data-testid="tasks-table">
        <thead><tr><th>Task</th><th>About</th><th>Tags</th><th>Schedule</th><th>Workers</th><th>Running</th><th>Enabled</th><th></th></tr></thead>
        <tbody>
          ${a.map(i=>c`<tr key=${i.name} data-task=${i.name}>
              <td data-label="Task"><a href=${`#/tasks/${encodeURIComponent(i.name)}`}>${i.name}</a>${i.cpu_bound?c` <span class="tag">cpu</span>`:null}</td>
              <td data-label="About">${i.short_description}</td>
              <td data-label="Tags">${i.tags.map(_=>c`<span key=${_} class="tag">${_}</span>`)}</td>
              <td data-label="Schedule">${i.schedule||"—"}</td>
              <td data-label="Workers">${i.workers}</td>
              <td data-label="Running">${i.running}</td>
              <td data-label="Enabled"><${Nt} task=${i} me=${t} onChanged=${o} /></td>
              <td data-label="">${J(t,"queue")?c`<a class="button" href=${`#/tasks/${encodeURIComponent(i.name)}`}>Queue…</a>`:null}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>
  </section>`}function Ie(t){if(!t||t.$ref||t.enum)return"";let e=t.type;if(!e&&Array.isArray(t.anyOf)){let n=t.anyOf.filter(s=>s.type!=="null");n.length===1&&!n[0].$ref&&!n[0].enum&&(e=n[0].type)}return["string","number","integer","boolean"].includes(e)?e:""}function Zt(t){return[t,...t.anyOf||[]].some(n=>n&&(n.format==="password"||n.writeOnly))}function en(t){let e=Ie(t);return e==="boolean"?t.default===!0:t.default===void 0||t.default===null?"":e?String(t.default):ae(t.default)}function tn(t,e){let n={};for(let[s,r]of Object.entries(t)){let a=Ie(r),o=e[s];if(a==="boolean"){n[s]=!!o;continue}if(!(o===""||o===void 0))if(a==="number"||a==="integer"){let i=Number(o);n[s]=Number.isNaN(i)?o:i}else if(a==="string")n[s]=o;else try{n[s]=JSON.parse(o)}catch{throw new Error(`${s}: not valid JSON`)}}return n}function nn({task:t}){let e=t.params_schema||{},n=e.properties||{},s=new Set(e.required||[]),r=Object.keys(n),a=r.length===0&&e.additionalProperties!==!1,[o,i]=y(()=>Object.fromEntries(r.map(f=>[f,en(n[f])]))),[_,d]=y("{}"),[l,m]=y(""),[h,u]=y(!1),p=async f=>{f.preventDefault(),m("");let g;try{g=a?JSON.parse(_):tn(n,o)}catch($){m($ instanceof SyntaxError?"params: not valid JSON":$.message);return}u(!0);try{let $=await te(`tasks/${encodeURIComponent(t.name)}`,g);z(`runs/${$.id}`)}catch($){m($.message)}finally{u(!1)}},b=(f,g)=>i({...o,[f]:g});return c`<form class="queue-form" onSubmit=${p} data-testid="queue-form">
    ${r.map(f=>{let g=n[f],$=Ie(g),k=c`<span>${g.title||f}${s.has(f)?c`<abbr class="required" title="required">*</abbr>`:null}</span>`,v=g.description?c`<small class="muted">${g.description}</small>`:null,q={name:f,"aria-required":s.has(f)?"true":void 0};if($==="boolean")return c`<label key=${f} class="check"><input type="checkbox" ...${q} checked=${o[f]} onChange=${D=>b(f,D.currentTarget.checked)} /> ${k} ${v}</label>`;if($){let D=$==="string"?Zt(g)?"password":"text":"number";return c`<label key=${f}>${k}
          <input type=${D} step=${$==="integer"?"1":$==="number"?"any":void 0} ...${q} value=${o[f]} onInput=${Q=>b(f,Q.currentTarget.value)} />
          ${v}</label>`}return c`<label key=${f}>${k} <small class="muted">(JSON)</small>
        <textarea rows="4" ...${q} value=${o[f]} onInput=${D=>b(f,D.currentTarget.value)}></textarea>
        ${v}</label>`})}
    ${a?c`<label>Params (JSON object)<textarea name="params" rows="6" value=${_} onInput=${f=>d(f.currentTarget.value)}></textarea></label>`:null}
    ${r.length===0&&!a?c`<p class="muted">This task takes no params.</p>`:null}
    <div class="buttons"><button type="submit" disabled=${h}>Queue a run</button></div>
    ${l?c`<p class="error" role="alert" data-testid="queue-error">${l}</p>`:null}
  </form>`}function Pt({name:t,me:e}){let n=C(o=>x(`tasks/${encodeURIComponent(t)}`,o),0,[t]),[s,r]=y(null),a=s||n.data;return c`<section class="page" data-page="task">
    <h1>Task ${t}</h1>
    <${N} error=${n.error} />
    ${a?c`<p>${a.description||a.short_description}</p>
          <dl class="facts">
            <dt>module</dt><dd class="mono">${a.module}</dd>
            <dt>priority</dt><dd>${a.priority}</dd>
            <dt>timeout</dt><dd>${a.timeout_seconds} s</dd>
            <dt>max concurrency</dt><dd>${a.max_concurrency||"unlimited"}</dd>
            <dt>schedule</dt><dd>${a.schedule||"—"}</dd>
            <dt>workers</dt><dd>${a.workers}</dd>
            <dt>enabled</dt><dd><${Nt} task=${a} me=${e} onChanged=${r} /></dd>
          </dl>
          <p><a href=${`#/runs?task=${encodeURIComponent(t)}`}>its runs</a></p>
          ${J(e,"queue")?c`<div class="card wide"><h2>Queue a run</h2><${nn} task=${a} /></div>`:null}`:c`<p class="muted">loading…</p>`}
  </section>`}var sn=[["","Overview"],["runs","Runs"],["tasks","Tasks"],["schedules","Schedules"],["workers","Workers"],["dead-letters","Dead letters"]];function an({me:t,onToken:e}){let[n,s]=y(""),r=a=>{a.preventDefault(),e(n.trim())};return c`<section class="page login" data-page="login">
    <h1>Sign in</h1>
    <p>This system checks callers: paste a bearer token (<code>fluid auth token --roles read,queue</code> mints one). It is kept in this tab only.</p>
    ${t&&t.error&&Oe()?c`<p class="error" role="alert">${t.error}</p>`:null}
    <form onSubmit=${r}>
      <label>Token <input type="password" name="token" autocomplete="off" value=${n} onInput=${a=>s(a.currentTarget.value)} /></label>
      <div class="buttons"><button type="submit" disabled=${!n.trim()}>Sign in</button></div>
    </form>
  </section>`}function rn({route:t,me:e}){let[n,s]=t.parts;return n?n==="runs"&&s?c`<${kt} id=${s} me=${e} />`:n==="runs"?c`<${xt} key=${JSON.stringify(t.params)} params=${t.params} />`:n==="tasks"&&s?c`<${Pt} key=${s} name=${s} me=${e} />`:n==="tasks"?c`<${Rt} me=${e} />`:n==="schedules"?c`<${St} />`:n==="workers"?c`<${Tt} />`:n==="dead-letters"?c`<${Ct} />`:c`<section class="page"><h1>Not found</h1><p><a href="#/">Overview</a></p></section>`:c`<${vt} />`}function on(){let t=gt(),[e,n]=y(null),[s,r]=y(null),[a,o]=y(0);E(()=>{let l=null;return x("whoami").then(m=>{n(m),r(null)}).catch(m=>{r(m),l=setTimeout(()=>o(h=>h+1),3e3)}),()=>clearTimeout(l)},[a]),E(()=>ct(()=>o(l=>l+1)),[]);let i=l=>{lt(l),o(m=>m+1)},_=e&&e.auth&&e.roles.length===0,d=t.parts[0]||"";return c`<div class="shell">
    <header class="top">
      <a class="brand" href="#/">fluid</a>
      <nav>
        ${sn.map(([l,m])=>c`<a key=${l} href=${`#/${l}`} class=${d===l?"active":""} aria-current=${d===l?"page":void 0}>${m}</a>`)}
      </nav>
      <span class="who" data-testid="who">
        ${e&&e.auth?e.roles.length?c`${e.subject} <span class="muted">(${e.roles.join(", ")})</span> <button class="link" onClick=${()=>i("")}>sign out</button>`:"signed out":e?c`<span class="muted">auth off</span>`:""}
      </span>
    </header>
    <main>
      ${s?c`<p class="error" role="alert">The gateway does not answer: ${s.message}</p>`:null}
      ${e?_?c`<${an} me=${e} onToken=${i} />`:c`<${rn} route=${t} me=${e} />`:c`<p class="muted">connecting…</p>`}
    </main>
  </div>`}var Et=document.getElementById("app");Et.textContent="";Ge(c`<${on} />`,Et);
